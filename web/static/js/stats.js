// Live per-stream figures (bitrate, loss, jitter, round trip) from RTCPeerConnection.getStats,
// drawn as small graphs. One Stats object per call; poll() once a second.

const HISTORY = 60; // seconds shown in each graph

class Series {
  constructor(label, unit, fmt) {
    this.label = label; this.unit = unit; this.fmt = fmt; this.values = [];
    this.el = document.createElement('div'); this.el.className = 'stat';
    this.el.innerHTML = `<div class="head"><span>${label}</span><b>–</b></div><canvas width="240" height="34"></canvas>`;
    this.value = this.el.querySelector('b'); this.canvas = this.el.querySelector('canvas');
  }
  push(v) {
    if (!Number.isFinite(v)) return;
    this.values.push(v); if (this.values.length > HISTORY) this.values.shift();
    this.value.textContent = this.fmt(v) + ' ' + this.unit;
    this.draw();
  }
  draw() {
    const c = this.canvas, g = c.getContext('2d'), w = c.width, h = c.height, v = this.values;
    g.clearRect(0, 0, w, h);
    if (v.length < 2) return;
    const max = Math.max(...v, 1e-9) * 1.15;
    g.beginPath();
    v.forEach((x, i) => { const px = (i / (HISTORY - 1)) * w, py = h - 2 - (x / max) * (h - 4); i ? g.lineTo(px, py) : g.moveTo(px, py); });
    g.strokeStyle = '#4f8cff'; g.lineWidth = 1.5; g.stroke();
    g.lineTo(((v.length - 1) / (HISTORY - 1)) * w, h); g.lineTo(0, h); g.closePath();
    g.fillStyle = 'rgba(79,140,255,.12)'; g.fill();
  }
}

class StreamStats {
  constructor(title) {
    this.el = document.createElement('div');
    const h = document.createElement('div'); h.className = 'stat-group'; h.textContent = title; this.el.append(h);
    this.bitrate = new Series('bitrate', 'kbit/s', (x) => x.toFixed(0));
    this.loss = new Series('loss', '%', (x) => x.toFixed(1));
    this.jitter = new Series('jitter', 'ms', (x) => x.toFixed(1));
    this.rtt = new Series('round trip', 'ms', (x) => x.toFixed(0));
    for (const s of [this.bitrate, this.loss, this.jitter, this.rtt]) this.el.append(s.el);
    this.prev = null;
  }
}

export class Stats {
  constructor(container) { this.container = container; this.streams = new Map(); this.timer = null; }

  start(pc) {
    this.stop(); this.pc = pc;
    this.timer = setInterval(() => this.poll().catch(() => {}), 1000);
  }
  stop() { clearInterval(this.timer); this.timer = null; this.streams.clear(); this.container.replaceChildren(); }

  stream(key, title) {
    let s = this.streams.get(key);
    if (!s) { s = new StreamStats(title); this.streams.set(key, s); this.container.append(s.el); }
    return s;
  }

  async poll() {
    if (!this.pc) return;
    const report = await this.pc.getStats();
    let rtt = NaN;
    report.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime * 1000; });
    const remoteIn = new Map();
    report.forEach((r) => { if (r.type === 'remote-inbound-rtp') remoteIn.set(r.localId, r); });
    report.forEach((r) => {
      if (r.type !== 'inbound-rtp' && r.type !== 'outbound-rtp') return;
      const dir = r.type === 'inbound-rtp' ? 'in' : 'out';
      const key = `${dir}:${r.kind}:${r.rid || r.ssrc}`;
      const s = this.stream(key, `${dir === 'in' ? '↓' : '↑'} ${r.kind}${r.rid ? ' ' + r.rid : ''}`);
      const bytes = dir === 'in' ? r.bytesReceived : r.bytesSent;
      if (s.prev) {
        const dt = (r.timestamp - s.prev.timestamp) / 1000;
        if (dt > 0) s.bitrate.push(((bytes - s.prev.bytes) * 8) / dt / 1000);
        if (dir === 'in') {
          const lost = r.packetsLost - s.prev.lost, got = r.packetsReceived - s.prev.received;
          s.loss.push(got + lost > 0 ? (100 * Math.max(lost, 0)) / (got + lost) : 0);
        }
      }
      if (dir === 'in') s.jitter.push((r.jitter || 0) * 1000);
      else {
        const ri = remoteIn.get(r.id);
        if (ri) { s.loss.push((ri.fractionLost || 0) * 100); s.jitter.push((ri.jitter || 0) * 1000); }
      }
      s.rtt.push(rtt);
      s.prev = { timestamp: r.timestamp, bytes, lost: r.packetsLost || 0, received: r.packetsReceived || 0 };
    });
  }
}
