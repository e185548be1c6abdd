// Live connection figures from RTCPeerConnection.getStats, polled once a second and drawn as
// small graphs: the round trip and the total rates received and sent, then one card per
// stream (what is received from each participant, what the page sends) with its bitrate graph
// and its loss, jitter, size and frame rate.

const HISTORY = 30; // seconds shown in each graph

// Sparkline is a small line graph of the last HISTORY values.
class Sparkline {
  constructor(color = '#4f8cff') {
    this.values = []; this.color = color;
    this.canvas = document.createElement('canvas'); this.canvas.className = 'spark';
  }
  push(v) {
    if (!Number.isFinite(v)) return;
    this.values.push(v); if (this.values.length > HISTORY) this.values.shift();
    this.draw();
  }
  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext('2d'), v = this.values;
    g.clearRect(0, 0, w, h);
    g.fillStyle = '#ffffff10'; g.fillRect(0, h - dpr, w, dpr); // the baseline
    if (v.length < 2) return;
    const max = Math.max(...v, 1e-9) * 1.2, step = w / (HISTORY - 1), x0 = w - (v.length - 1) * step;
    const y = (x) => h - 2 * dpr - (x / max) * (h - 4 * dpr);
    g.beginPath();
    v.forEach((x, i) => (i ? g.lineTo(x0 + i * step, y(x)) : g.moveTo(x0, y(x))));
    g.strokeStyle = this.color; g.lineWidth = 1.5 * dpr; g.lineJoin = 'round'; g.stroke();
    g.lineTo(w, h); g.lineTo(x0, h); g.closePath();
    g.fillStyle = this.color + '22'; g.fill();
  }
}

// Metric is a labelled figure with a sparkline (the summary row).
class Metric {
  constructor(label, unit, fmt, color) {
    this.unit = unit; this.fmt = fmt; this.spark = new Sparkline(color);
    this.el = document.createElement('div'); this.el.className = 'metric';
    this.el.innerHTML = '<div class="k"></div><div class="v">–</div>';
    this.unitEl = document.createElement('span'); this.unitEl.className = 'u';
    this.el.querySelector('.k').textContent = label;
    this.value = this.el.querySelector('.v');
    this.el.append(this.spark.canvas);
  }
  push(v) {
    if (!Number.isFinite(v)) return;
    const [num, unit] = this.fmt(v).concat(this.unit).filter(Boolean);
    this.value.textContent = num; this.unitEl.textContent = unit || ''; this.value.append(this.unitEl);
    this.spark.push(v);
  }
}

// Card is one stream's figures.
class Card {
  constructor(outgoing) {
    this.el = document.createElement('div'); this.el.className = 'scard' + (outgoing ? ' out' : '');
    this.el.innerHTML = '<div class="row1"><span class="dir"></span><span class="what"></span><b class="rate">–</b></div><div class="row3"></div>';
    this.el.querySelector('.dir').textContent = outgoing ? '↑' : '↓';
    this.what = this.el.querySelector('.what'); this.rate = this.el.querySelector('.rate');
    this.details = this.el.querySelector('.row3');
    this.spark = new Sparkline(outgoing ? '#35c27b' : '#4f8cff');
    this.el.insertBefore(this.spark.canvas, this.details);
    this.prev = null;
  }
}

const kbps = (bytes, prevBytes, ms) => (ms > 0 ? ((bytes - prevBytes) * 8) / ms : NaN);
const fmtRate = (x) => (x >= 1000 ? `${(x / 1000).toFixed(1)} Mbit/s` : `${x.toFixed(0)} kbit/s`);
// rateParts is fmtRate as [number, unit], for the summary.
const rateParts = (x) => (x >= 1000 ? [(x / 1000).toFixed(1), 'Mbit/s'] : [x.toFixed(0), 'kbit/s']);

export class Stats {
  // describe(trackIdentifier) names a received track: {who, kind}.
  constructor(container, describe) {
    this.container = container; this.describe = describe;
    this.cards = new Map(); this.timer = null; this.totals = null;
  }

  start(sub, pub) {
    this.stop(); this.sub = sub; this.pub = pub;
    this.container.replaceChildren();
    const summary = document.createElement('div'); summary.className = 'metrics';
    this.rtt = new Metric('Round trip', 'ms', (x) => [x < 1 ? '<1' : x.toFixed(0)], '#f0b429');
    this.down = new Metric('Receiving', '', rateParts, '#4f8cff');
    this.up = new Metric('Sending', '', rateParts, '#35c27b');
    summary.append(this.rtt.el, this.down.el, this.up.el);
    this.list = document.createElement('div'); this.list.className = 'scards';
    this.container.append(summary, this.list);
    this.timer = setInterval(() => this.poll().catch(() => {}), 1000);
  }

  stop() {
    clearInterval(this.timer); this.timer = null;
    this.cards.clear(); this.totals = null; this.container.replaceChildren();
  }

  card(key, outgoing) {
    let c = this.cards.get(key);
    if (!c) {
      c = new Card(outgoing); this.cards.set(key, c);
      // Received streams first, then what the page sends.
      const firstOut = [...this.list.children].find((e) => e.classList.contains('out'));
      if (outgoing || !firstOut) this.list.append(c.el); else this.list.insertBefore(c.el, firstOut);
    }
    return c;
  }

  async poll() {
    const [sub, pub] = await Promise.all([this.sub?.getStats(), this.pub?.getStats()]);
    if (!this.timer) return;
    const now = performance.now();
    let rtt = NaN, bytesIn = 0, bytesOut = 0;
    const seen = new Set();
    const pairRtt = (report) => {
      report?.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime * 1000; });
    };
    pairRtt(sub); if (!Number.isFinite(rtt)) pairRtt(pub);

    sub?.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      bytesIn += r.bytesReceived || 0;
      const key = `in:${r.trackIdentifier || r.ssrc}`; seen.add(key);
      const c = this.card(key, false);
      const d = this.describe(r.trackIdentifier) || { who: '', kind: r.kind };
      c.what.textContent = `${d.who || 'Someone'} · ${d.kind === 'screenShare' ? 'screen' : r.kind}`;
      const parts = [];
      if (c.prev) {
        const lost = (r.packetsLost || 0) - c.prev.lost, got = (r.packetsReceived || 0) - c.prev.received;
        parts.push(`loss ${got + lost > 0 ? ((100 * Math.max(lost, 0)) / (got + lost)).toFixed(1) : '0.0'} %`);
        const rate = kbps(r.bytesReceived || 0, c.prev.bytes, r.timestamp - c.prev.timestamp);
        if (Number.isFinite(rate)) { c.rate.textContent = fmtRate(rate); c.spark.push(rate); }
      }
      parts.push(`jitter ${((r.jitter || 0) * 1000).toFixed(0)} ms`);
      if (r.kind === 'video' && r.frameWidth) parts.push(`${r.frameWidth}×${r.frameHeight}`, `${(r.framesPerSecond || 0).toFixed(0)} fps`);
      c.details.textContent = parts.join(' · ');
      c.prev = { timestamp: r.timestamp, bytes: r.bytesReceived || 0, lost: r.packetsLost || 0, received: r.packetsReceived || 0 };
    });

    // What the page sends: one card per track, its simulcast layers together.
    const out = new Map();
    pub?.forEach((r) => {
      if (r.type !== 'outbound-rtp') return;
      bytesOut += r.bytesSent || 0;
      const key = `out:${r.mediaSourceId || r.kind}`;
      const o = out.get(key) || { kind: r.kind, bytes: 0, timestamp: r.timestamp, layers: [], fps: 0 };
      o.bytes += r.bytesSent || 0; o.timestamp = r.timestamp;
      if (r.kind === 'video' && r.frameWidth && r.active !== false) { o.layers.push([r.frameWidth, r.frameHeight]); o.fps = Math.max(o.fps, r.framesPerSecond || 0); }
      out.set(key, o);
    });
    const remoteIn = new Map();
    pub?.forEach((r) => { if (r.type === 'remote-inbound-rtp') remoteIn.set(r.kind, r); });
    for (const [key, o] of out) {
      seen.add(key);
      const c = this.card(key, true);
      c.what.textContent = o.kind === 'audio' ? 'You · microphone' : 'You · camera';
      if (c.prev) {
        const rate = kbps(o.bytes, c.prev.bytes, o.timestamp - c.prev.timestamp);
        if (Number.isFinite(rate)) { c.rate.textContent = fmtRate(rate); c.spark.push(rate); }
      }
      const parts = [];
      const ri = remoteIn.get(o.kind);
      if (ri) parts.push(`loss ${((ri.fractionLost || 0) * 100).toFixed(1)} %`);
      if (o.layers.length) {
        o.layers.sort((a, b) => b[0] - a[0]);
        parts.push(o.layers.map(([w, h]) => `${w}×${h}`).join(' + '), `${o.fps.toFixed(0)} fps`);
      }
      c.details.textContent = parts.join(' · ');
      c.prev = { timestamp: o.timestamp, bytes: o.bytes };
    }

    for (const [key, c] of this.cards) if (!seen.has(key)) { c.el.remove(); this.cards.delete(key); }

    this.rtt.push(rtt);
    if (this.totals) {
      const ms = now - this.totals.at;
      this.down.push(Math.max(0, kbps(bytesIn, this.totals.bytesIn, ms)));
      this.up.push(Math.max(0, kbps(bytesOut, this.totals.bytesOut, ms)));
    }
    this.totals = { at: now, bytesIn, bytesOut };
  }
}
