// The browser tests' probe: what the page hears and sees, measured inside the page.
//
// Audio: one AudioContext; every watched stream (the local microphone, each remote audio
// stream) feeds an AudioWorklet that reports, sample-exact on the context's clock, each beep
// onset (the level rising above a threshold after at least 200 ms below it) and, every 50 ms,
// the peak level. The fake microphone beeps periodically, so onsets on the local stream and
// on the stream that comes back from the echo bot give the echo path's round trip.
//
// Video: a <video> is fingerprinted by drawing it small onto a canvas (a hash of the pixels
// and their mean brightness), and its presented frames are counted with
// requestVideoFrameCallback.
(() => {
  if (window.sbProbe) return;

  const WORKLET = `
    class Onsets extends AudioWorkletProcessor {
      constructor() { super(); this.quiet = 0; this.armed = false; this.peak = 0; this.n = 0; }
      process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        if (!ch) return true;
        const threshold = 0.02, rearm = Math.round(0.2 * sampleRate);
        for (let i = 0; i < ch.length; i++) {
          const a = Math.abs(ch[i]);
          if (a > this.peak) this.peak = a;
          if (a >= threshold) {
            if (this.armed) this.port.postMessage({ onset: (currentFrame + i) / sampleRate });
            this.armed = false; this.quiet = 0;
          } else if (++this.quiet >= rearm) this.armed = true;
        }
        this.n += ch.length;
        if (this.n >= sampleRate / 20) {
          this.port.postMessage({ peak: this.peak, at: currentFrame / sampleRate });
          this.peak = 0; this.n = 0;
        }
        return true;
      }
    }
    registerProcessor('sb-onsets', Onsets);`;

  const probe = {
    ctx: null,
    ready: null,
    watched: new Map(), // key → {onsets: [], peaks: [[time, peak]], track}
    frames: new WeakMap(), // video element → presented frame count

    // start makes the AudioContext and loads the worklet (once).
    start() {
      if (!this.ready) {
        this.ctx = new AudioContext();
        const url = URL.createObjectURL(new Blob([WORKLET], { type: 'application/javascript' }));
        this.ready = this.ctx.audioWorklet.addModule(url);
      }
      return this.ready.then(() => this.ctx.resume()).then(() => this.ctx.state);
    },

    // watch measures the audio track under key (once per key).
    async watch(key, track) {
      await this.start();
      if (this.watched.has(key)) return;
      const w = { onsets: [], peaks: [], track: track.id };
      this.watched.set(key, w);
      const src = this.ctx.createMediaStreamSource(new MediaStream([track]));
      const node = new AudioWorkletNode(this.ctx, 'sb-onsets');
      node.port.onmessage = (e) => {
        if (e.data.onset !== undefined) w.onsets.push(e.data.onset);
        else { w.peaks.push([e.data.at, e.data.peak]); if (w.peaks.length > 200) w.peaks.shift(); }
      };
      const sink = this.ctx.createGain(); sink.gain.value = 0;
      src.connect(node).connect(sink).connect(this.ctx.destination);
      w.nodes = [src, node, sink];
    },

    // watchCall watches the call's microphone as 'local' and each remote audio stream under its
    // owner's participant id, now and as they arrive.
    async watchCall() {
      await this.start();
      const scan = () => {
        const c = window.sb && window.sb.call;
        if (!c) return;
        if (c.local.audio) this.watch('local', c.local.audio);
        for (const r of c.remoteStreams.values()) {
          if (r.kind === 'audio') this.watch(r.owner, r.stream.getAudioTracks()[0]);
        }
      };
      scan();
      if (!this.timer) this.timer = setInterval(scan, 250);
      return this.ctx.state;
    },

    // level is the loudest peak of key's stream in the last seconds of the context's time.
    level(key, seconds = 2) {
      const w = this.watched.get(key);
      if (!w) return 0;
      const since = this.ctx.currentTime - seconds;
      return w.peaks.reduce((m, [t, p]) => (t >= since && p > m ? p : m), 0);
    },

    // pause silences the microphone (the local track, so both what the page sends and what the
    // probe hears of it) for ms milliseconds, which marks the beeps: the echo path's delay is
    // otherwise known only modulo the beeps' period. It resolves when the microphone is back.
    pause(ms = 1500) {
      const t = window.sb.call.local.audio;
      this.gapStart = this.ctx.currentTime; t.enabled = false;
      return new Promise((resolve) => setTimeout(() => { t.enabled = true; this.gapEnd = this.ctx.currentTime; resolve(); }, ms));
    },

    // echoDelays gives the echo path's delay, in milliseconds, of each beep that came back on
    // key's stream after the pause: the first beep back after the silence is the first one sent
    // after it; each later one is paired with the local beep sent before it whose delay is
    // within 120 ms of that first one's (others, such as a beep cut in two, are left out).
    echoDelays(key) {
      const local = this.watched.get('local'), remote = this.watched.get(key);
      if (!local || !remote || this.gapEnd === undefined) return [];
      const l0 = local.onsets.find((t) => t >= this.gapEnd);
      const i0 = remote.onsets.findIndex((t, i) => t > this.gapStart && i > 0 && t - remote.onsets[i - 1] > 1);
      if (l0 === undefined || i0 < 0) return [];
      const d0 = remote.onsets[i0] - l0, out = [];
      for (const r of remote.onsets.slice(i0)) {
        let best = null;
        for (const l of local.onsets) if (l >= l0 && l <= r && (best === null || Math.abs(r - l - d0) < Math.abs(r - best - d0))) best = l;
        if (best !== null && Math.abs(r - best - d0) < 0.12) out.push(Math.round((r - best) * 1000));
      }
      return out;
    },

    // summary is what the probe has: per key, onsets (count, last intervals) and the level.
    summary() {
      const out = { state: this.ctx && this.ctx.state, time: this.ctx && this.ctx.currentTime };
      for (const [k, w] of this.watched) {
        const iv = w.onsets.slice(-4).map((t, i, a) => (i ? Math.round((t - a[i - 1]) * 1000) : 0)).slice(1);
        out[k] = { onsets: w.onsets.length, intervals: iv, level: Number(this.level(k).toFixed(3)) };
      }
      return out;
    },

    // countFrames counts the frames video presents from now on.
    countFrames(video) {
      if (this.frames.has(video)) return;
      this.frames.set(video, 0);
      const tick = () => { this.frames.set(video, this.frames.get(video) + 1); video.requestVideoFrameCallback(tick); };
      video.requestVideoFrameCallback(tick);
    },

    // print fingerprints what video shows: a hash of a 32×18 copy's pixels, their mean
    // brightness (0–255), the video's size and the frames presented since countFrames.
    print(video) {
      this.countFrames(video);
      const w = 32, h = 18;
      const c = document.createElement('canvas'); c.width = w; c.height = h;
      const g = c.getContext('2d', { willReadFrequently: true });
      g.drawImage(video, 0, 0, w, h);
      const px = g.getImageData(0, 0, w, h).data;
      let hash = 2166136261, sum = 0;
      for (let i = 0; i < px.length; i += 4) {
        sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
        hash = Math.imul(hash ^ px[i] ^ (px[i + 1] << 8) ^ (px[i + 2] << 16), 16777619) >>> 0;
      }
      return { hash, mean: Math.round(sum / (w * h)), width: video.videoWidth, height: video.videoHeight, frames: this.frames.get(video) };
    },

    // watchConn records each text the page's connection indicator shows (conn), and counts the
    // signalling channel's resumptions (resumed).
    watchConn() {
      const el = document.getElementById('conn');
      this.conn = [el.textContent]; this.resumed = 0;
      new MutationObserver(() => this.conn.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
      window.sb.call.signal.addEventListener('resumed', () => this.resumed++);
    },

    // watchDominant records the dominant speaker the page has, then each one the service
    // announces, with whether the page highlighted that participant's tile and roster entry by
    // the time the announcement was handled (the page's own listener runs first).
    watchDominant() {
      if (this.dominant) return;
      this.dominant = [];
      const note = (id, how) => {
        const c = window.sb.call, t = c && c.tiles.get(id);
        const li = document.querySelector('#roster li.speaking');
        this.dominant.push({ id, how, at: Math.round(performance.now()), tile: !!(t && t.el.classList.contains('speaking')),
          roster: id ? !!li && li.dataset.id === id : !li, lit: document.querySelectorAll('.tile.speaking').length });
      };
      note(window.sb.call.dominant, 'before');
      window.sb.call.signal.addEventListener('dominantSpeaker', (e) => note(e.detail.participantId || '', 'told'));
    },

    // tileVideo is the <video> of the tile showing the remote participant owner's camera.
    tileVideo(owner) {
      const c = window.sb && window.sb.call;
      const t = c && c.tiles.get(owner);
      return t && t.video.srcObject ? t.video : null;
    },
  };
  window.sbProbe = probe;
})();
