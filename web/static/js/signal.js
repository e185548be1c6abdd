// The signalling channel to the service: one WebSocket carrying JSON messages (see
// docs/signalling.md). It resumes the session on a new socket after a drop, with back-off,
// within the grace period the service announced.

export class Signal extends EventTarget {
  constructor(url) {
    super();
    this.url = url; this.ws = null; this.token = null; this.resumeWithin = 0;
    this.closed = false; this.queue = []; this.retry = 0; this.lostAt = 0;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => {
        this.retry = 0;
        if (this.token && this.lostAt) ws.send(JSON.stringify({ type: 'resume', token: this.token }));
        for (const m of this.queue.splice(0)) ws.send(m);
        resolve();
      };
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.type === 'joined') {
          this.token = msg.token; this.resumeWithin = msg.resumeWithinMs || 0;
          if (this.lostAt) { this.lostAt = 0; this.dispatchEvent(new CustomEvent('resumed', { detail: msg })); }
        }
        this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
        this.dispatchEvent(new CustomEvent('message', { detail: msg }));
      };
      ws.onerror = () => reject(new Error('the service cannot be reached'));
      ws.onclose = () => {
        if (this.ws !== ws || this.closed) return;
        this.lost();
      };
    });
  }

  lost() {
    if (!this.lostAt) this.lostAt = Date.now();
    const elapsed = Date.now() - this.lostAt;
    if (!this.token || elapsed > Math.max(this.resumeWithin, 1000)) {
      this.closed = true;
      this.dispatchEvent(new CustomEvent('gone'));
      return;
    }
    this.dispatchEvent(new CustomEvent('reconnecting'));
    const delay = Math.min(250 * 2 ** this.retry++, 4000);
    // A socket that fails to open also closes: its close handler tries again.
    setTimeout(() => { if (!this.closed) this.connect().catch(() => {}); }, delay);
  }

  send(msg) {
    const data = JSON.stringify(msg);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
    else this.queue.push(data);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    try { this.send({ type: 'leave' }); } catch { /* socket already gone */ }
    this.ws?.close();
  }
}
