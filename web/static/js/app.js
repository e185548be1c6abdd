// The Switchboard web client: join a room or call a bot, publish microphone, camera and screen,
// receive everyone else, show the roster, the dominant speaker and live connection figures.
// Plain ES modules, no build step.

import { Signal } from './signal.js';
import { Stats } from './stats.js';
import { icons } from './icons.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Simulcast layers the service forwards (rids q, h, f: quarter, half, full resolution).
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

function toast(text, kind = '', ms = 5000) {
  const el = document.createElement('div');
  el.className = `toast ${kind}`; el.textContent = text;
  $('toasts').append(el);
  if (ms) setTimeout(() => el.remove(), ms);
  return el;
}

function setConn(text, kind) { const c = $('conn'); c.textContent = text; c.className = `pill ${kind || ''}`; }

function initials(name) { return (name || '?').split(/\s+/).filter(Boolean).map((w) => w[0]).join('').slice(0, 2).toUpperCase() || '?'; }

// hue gives each participant a colour of their own for their avatar.
function hue(id) { let h = 0; for (const ch of id || '') h = (h * 31 + ch.charCodeAt(0)) % 360; return h; }

// lobbyError shows (or, with '', hides) a message in the lobby card.
function lobbyError(text) { const e = $('lobby-error'); e.textContent = text; e.classList.toggle('hidden', !text); }

// setButton shows a control's state: its icon, its label, and whether it is off (a muted
// device), on (a screen being shared) or unusable.
function setButton(id, icon, label, state = '', disabled = false) {
  const b = $(id); b.querySelector('.ico').innerHTML = icon; b.querySelector('.txt').textContent = label;
  b.classList.toggle('off', state === 'off'); b.classList.toggle('on', state === 'on'); b.disabled = disabled;
}

// Browsers may refuse to play sound before the user has interacted with the page. Audio that
// could not start is retried at the first click or key press.
const blockedAudio = new Set();
let audioToast = null;
function playAudio(el) {
  return el.play().then(() => blockedAudio.delete(el)).catch(() => {
    if (!el.srcObject) return; // dropped meanwhile
    blockedAudio.add(el);
    if (!audioToast) audioToast = toast('Click anywhere to hear the call (the browser blocked sound until you do).', '', 0);
  });
}
async function unblockAudio() {
  await Promise.all([...blockedAudio].map(playAudio));
  if (audioToast && blockedAudio.size === 0) { audioToast.remove(); audioToast = null; }
}
addEventListener('pointerdown', () => setTimeout(unblockAudio), true);
addEventListener('keydown', () => setTimeout(unblockAudio), true);

class Call {
  constructor() {
    this.signal = null; this.pub = null; this.sub = null; this.me = null;
    this.local = { audio: null, video: null, screen: null };
    this.roster = []; this.dominant = '';
    this.tiles = new Map(); // key: participant id or 'screen:<source>' → tile
    this.audioEls = new Map();
    this.remoteStreams = new Map(); // track id → MediaStream (for tests and tiles)
    this.stats = new Stats($('stats'), (trackId) => {
      const r = this.remoteStreams.get(trackId);
      return r && { who: this.person(r.owner)?.displayName || '', kind: r.kind };
    });
    this.pendingPub = []; this.pendingSub = []; this.earlyOffer = null;
    this.bot = ''; this.since = 0; this.clock = null;
    this.grid = new ResizeObserver(() => layout());
  }

  async start({ room, bot, name }) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.signal = new Signal(`${proto}//${location.host}/ws`);
    const s = this.signal;
    s.addEventListener('joined', (e) => this.onJoined(e.detail));
    s.addEventListener('answer', (e) => this.onAnswer(e.detail.sdp));
    s.addEventListener('offer', (e) => this.onOffer(e.detail.sdp));
    s.addEventListener('candidate', (e) => this.onCandidate(e.detail));
    s.addEventListener('roster', (e) => this.onRoster(e.detail.participants || []));
    s.addEventListener('dominantSpeaker', (e) => this.onDominant(e.detail.participantId));
    s.addEventListener('error', (e) => this.onError(e.detail));
    s.addEventListener('left', (e) => this.end(e.detail.reason));
    s.addEventListener('reconnecting', () => setConn('reconnecting…', 'warn'));
    s.addEventListener('resumed', () => { setConn('connected', 'ok'); toast('Reconnected.', 'ok', 2500); });
    s.addEventListener('gone', () => { toast('The connection to the service was lost.', 'bad', 0); this.end('connection lost'); });

    setConn('connecting…', 'warn');
    lobbyError('');
    this.bot = bot || ''; this.room = room || '';
    await this.openDevices();
    try { await s.connect(); } catch (err) { setConn('offline', 'bad'); toast(`Cannot reach the service: ${err.message}`, 'bad', 0); throw err; }
    if (bot) s.send({ type: 'callBot', bot, displayName: name });
    else s.send({ type: 'join', room, displayName: name });
    $('room-title').textContent = bot ? `Calling ${bot}…` : `Room ${room}`;
  }

  async openDevices() {
    if (!navigator.mediaDevices?.getUserMedia) { toast('This page needs a secure context (https or localhost) for the microphone and camera.', 'bad', 0); return; }
    const denied = [], missing = [];
    const want = async (constraints, what) => {
      try { return await navigator.mediaDevices.getUserMedia(constraints); } catch (err) {
        (err.name === 'NotAllowedError' || err.name === 'SecurityError' ? denied : missing).push(what);
        return null;
      }
    };
    const mic = await want({ audio: { echoCancellation: true, noiseSuppression: true } }, 'microphone');
    const cam = await want({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } }, 'camera');
    this.local.audio = mic?.getAudioTracks()[0] || null;
    this.local.video = cam?.getVideoTracks()[0] || null;
    const both = (l) => l.join(' and ');
    if (denied.length) toast(`Access to the ${both(denied)} was denied: you join to listen${denied.includes('camera') ? ' and watch' : ''}. Allow ${denied.length > 1 ? 'them' : 'it'} in the browser's site settings and rejoin to take part.`, 'bad', 12000);
    if (missing.length) toast(`No ${both(missing)} found: you join without ${missing.length > 1 ? 'them' : 'it'}.`, '', 8000);
    setButton('mic', this.local.audio ? icons.mic : icons.micOff, this.local.audio ? 'Mute' : 'No mic', this.local.audio ? '' : 'off', !this.local.audio);
    setButton('cam', this.local.video ? icons.cam : icons.camOff, this.local.video ? 'Stop video' : 'No camera', this.local.video ? '' : 'off', !this.local.video);
  }

  newPC(target) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (e) => { if (e.candidate) this.signal.send({ type: 'candidate', target, candidate: e.candidate.toJSON() }); };
    pc.onconnectionstatechange = () => {
      const st = pc.connectionState;
      if (st === 'connected') setConn('connected', 'ok');
      else if (st === 'disconnected') setConn('media interrupted', 'warn');
      else if (st === 'failed') { setConn('media failed', 'bad'); toast('The media connection failed.', 'bad', 0); }
    };
    return pc;
  }

  async onJoined(msg) {
    if (this.me) return; // a resumed session keeps its connections
    this.me = msg;
    this.sub = this.newPC('subscriber');
    this.sub.ontrack = (e) => this.onTrack(e);
    if (this.earlyOffer) { const sdp = this.earlyOffer; this.earlyOffer = null; this.onOffer(sdp); }
    this.pub = this.newPC('publisher');
    if (this.local.audio) this.pub.addTransceiver(this.local.audio, { direction: 'sendonly' });
    if (this.local.video) this.pub.addTransceiver(this.local.video, { direction: 'sendonly', sendEncodings: SIMULCAST });
    // Nothing to send (devices denied or missing): no publisher offer until a screen is shared.
    if (this.pub.getTransceivers().length) {
      try { await this.publish(); } catch (err) { toast(`Sending your microphone and camera failed: ${err.message}`, 'bad', 0); }
    }
    // In the conference now; the media connections report their troubles as they come (alone
    // in a room, nothing is received, so the subscriber connection does not start).
    setConn('connected', 'ok');
    this.stats.start(this.sub, this.pub);
    this.ensureTile(this.me.participantId, true);
    this.renderRoster();
    showCall(true);
    this.grid.observe($('grid'));
    // The address bar holds the link to this call, to share or reload.
    history.replaceState(null, '', this.bot ? `/?call=${encodeURIComponent(this.bot)}` : `/?room=${encodeURIComponent(this.room)}`);
    this.since = Date.now();
    const tick = () => { const s = Math.floor((Date.now() - this.since) / 1000); $('timer').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`; };
    tick(); this.clock = setInterval(tick, 1000);
  }

  async publish() {
    const offer = await this.pub.createOffer();
    await this.pub.setLocalDescription(offer);
    const screenTrackIds = this.local.screen ? [this.local.screen.id] : undefined;
    this.signal.send({ type: 'publish', sdp: offer.sdp, screenTrackIds });
  }

  // The publisher's answer. Candidates that arrive while it is being applied wait in
  // pendingPub (remoteDescription is not set until it is done) and are added after it.
  async onAnswer(sdp) {
    if (!this.pub) return;
    try { await this.pub.setRemoteDescription({ type: 'answer', sdp }); } catch (err) { toast(`Publishing failed: ${err.message}`, 'bad'); return; }
    for (const c of this.pendingPub.splice(0)) this.pub.addIceCandidate(c).catch(() => {});
  }

  // The subscriber connection's offer. The service sends it after 'joined'; one that overtook
  // it anyway waits for the connection (the service waits for its answer before offering again).
  async onOffer(sdp) {
    if (!this.sub) { this.earlyOffer = sdp; return; }
    await this.sub.setRemoteDescription({ type: 'offer', sdp });
    for (const c of this.pendingSub.splice(0)) this.sub.addIceCandidate(c).catch(() => {});
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this.signal.send({ type: 'answer', sdp: answer.sdp });
  }

  onCandidate({ target, candidate }) {
    const pc = target === 'subscriber' ? this.sub : this.pub;
    const pending = target === 'subscriber' ? this.pendingSub : this.pendingPub;
    if (!pc || !pc.remoteDescription) { pending.push(candidate); return; }
    pc.addIceCandidate(candidate).catch(() => {});
  }

  onTrack(e) {
    const track = e.track;
    const owner = e.streams[0]?.id || 'unknown';
    const [kind, source] = track.id.split('-');
    const stream = new MediaStream([track]);
    this.remoteStreams.set(track.id, { stream, owner, kind, source: Number(source) });
    if (track.kind === 'audio') {
      const el = new Audio(); el.autoplay = true; el.srcObject = stream;
      playAudio(el);
      this.audioEls.set(track.id, el);
    } else {
      const key = kind === 'screenShare' ? `screen:${source}` : owner;
      const tile = this.ensureTile(key, false, kind === 'screenShare' ? owner : null);
      tile.video.srcObject = stream; tile.el.classList.add('has-video');
      tile.source = Number(source);
      this.observeSize(tile);
    }
    track.addEventListener('ended', () => this.dropTrack(track.id));
    stream.addEventListener('removetrack', () => this.dropTrack(track.id));
  }

  dropTrack(id) {
    const r = this.remoteStreams.get(id); if (!r) return;
    this.remoteStreams.delete(id);
    const el = this.audioEls.get(id); if (el) { el.srcObject = null; blockedAudio.delete(el); }
    this.audioEls.delete(id);
    if (r.kind === 'screenShare') this.removeTile(`screen:${r.source}`);
    else if (r.kind === 'video') { const t = this.tiles.get(r.owner); if (t) { t.video.srcObject = null; t.el.classList.remove('has-video'); } }
  }

  // Ask the service for the layer that fits each remote tile's size on screen.
  observeSize(tile) {
    if (!window.ResizeObserver || tile.observer) return;
    let last = 0;
    tile.observer = new ResizeObserver(([entry]) => {
      const w = Math.round(entry.contentRect.width * devicePixelRatio), h = Math.round(entry.contentRect.height * devicePixelRatio);
      if (!tile.source || Math.abs(w - last) < 64) return;
      last = w;
      this.signal.send({ type: 'subscribe', sourceId: tile.source, width: w, height: h });
    });
    tile.observer.observe(tile.el);
  }

  ensureTile(key, self, screenOwner = null) {
    let t = this.tiles.get(key);
    if (t) return t;
    const el = document.createElement('div'); el.className = 'tile' + (screenOwner ? ' screen' : '') + (self ? ' self' : '');
    el.innerHTML = '<div class="avatar"><span></span></div><video autoplay playsinline></video><div class="label"></div>';
    const video = el.querySelector('video');
    if (self) { video.muted = true; if (this.local.video) { video.srcObject = new MediaStream([this.local.video]); el.classList.add('has-video'); } }
    t = { el, video, key, self, screenOwner, label: el.querySelector('.label'), avatar: el.querySelector('.avatar span') };
    this.tiles.set(key, t);
    // Your own tile stays last; screen shares come first.
    const grid = $('grid'), selfTile = [...this.tiles.values()].find((x) => x.self && x !== t);
    if (screenOwner) grid.prepend(el); else if (selfTile) grid.insertBefore(el, selfTile.el); else grid.append(el);
    this.renderTile(t);
    layout();
    return t;
  }

  removeTile(key) { const t = this.tiles.get(key); if (!t) return; t.observer?.disconnect(); t.el.remove(); this.tiles.delete(key); layout(); }

  person(id) { return this.roster.find((p) => p.id === id); }

  renderTile(t) {
    const id = t.screenOwner || t.key;
    const p = this.person(id);
    const name = p?.displayName || (t.self ? 'You' : '…');
    const stream = (kind) => p?.streams?.find((s) => s.kind === kind);
    const micMuted = t.self ? this.local.audio && !this.local.audio.enabled : stream('audio')?.muted;
    const noMic = t.self ? !this.local.audio : p && !stream('audio');
    t.label.replaceChildren();
    if (!t.screenOwner && (micMuted || noMic)) { const m = document.createElement('span'); m.className = 'mic-off'; m.innerHTML = icons.micOff; m.title = noMic ? 'no microphone' : 'muted'; t.label.append(m); }
    const n = document.createElement('span'); n.textContent = t.screenOwner ? `${name}'s screen` : t.self ? `${name} (you)` : name; t.label.append(n);
    if (p?.isBot) { const b = document.createElement('span'); b.className = 'badge'; b.textContent = 'bot'; t.label.append(b); }
    t.avatar.textContent = initials(name);
    t.avatar.style.setProperty('--hue', hue(id));
    t.el.classList.toggle('speaking', !t.screenOwner && id === this.dominant);
  }

  onRoster(participants) {
    this.roster = participants;
    const present = new Set(participants.map((p) => p.id));
    for (const [key, t] of this.tiles) {
      const owner = t.screenOwner || key;
      if (!t.self && !present.has(owner)) this.removeTile(key);
    }
    for (const p of participants) if (p.id !== this.me?.participantId) this.ensureTile(p.id, false);
    for (const t of this.tiles.values()) this.renderTile(t);
    this.renderRoster();
  }

  renderRoster() {
    const ul = $('roster'); ul.replaceChildren();
    $('count').textContent = this.roster.length || '';
    for (const p of this.roster) {
      const li = document.createElement('li'); li.dataset.id = p.id;
      if (p.id === this.dominant) li.classList.add('speaking');
      li.innerHTML = '<span class="av"></span><span class="who"><span class="name"></span></span><span class="streams"></span>';
      const av = li.querySelector('.av'); av.textContent = initials(p.displayName); av.style.setProperty('--hue', hue(p.id));
      li.querySelector('.name').textContent = p.displayName;
      const tag = (text, cls) => { const e = document.createElement('span'); e.className = cls; e.textContent = text; li.querySelector('.who').append(e); };
      if (p.id === this.me?.participantId) tag('you', 'tag');
      if (p.isBot) tag('bot', 'badge');
      const icon = (s) => (s.kind === 'audio' ? (s.muted ? icons.micOff : icons.mic) : s.kind === 'video' ? (s.muted ? icons.camOff : icons.cam) : icons.screen);
      const streams = li.querySelector('.streams');
      for (const s of p.streams || []) {
        const e = document.createElement('span'); e.className = s.muted ? 'off' : ''; e.innerHTML = icon(s);
        e.title = `${s.kind === 'screenShare' ? 'screen' : s.kind}${s.muted ? ' (muted)' : ''}${s.width ? ` ${s.width}×${s.height}` : ''}`;
        streams.append(e);
      }
      ul.append(li);
    }
    if (this.bot) {
      const b = this.roster.find((p) => p.isBot);
      if (b) $('room-title').textContent = `Call with ${b.displayName}`;
    }
  }

  onDominant(id) {
    this.dominant = id || '';
    for (const t of this.tiles.values()) this.renderTile(t);
    this.renderRoster();
  }

  onError(msg) {
    if (msg.ref === 'resume') { this.end('connection lost'); return; } // the session expired meanwhile
    if (msg.code === 'not_found' && (msg.ref === 'callBot' || !this.me)) {
      this.end('unknown bot');
      lobbyError(`Unknown bot “${this.bot}”: this service has no bot by that name.${$('bot-chips').childElementCount ? ' Pick one below.' : ''}`);
      return;
    }
    toast(`The service said: ${msg.message}`, 'bad', 8000);
  }

  async toggleMic() {
    const t = this.local.audio; if (!t) { toast('No microphone.', 'bad'); return; }
    t.enabled = !t.enabled;
    this.signal.send({ type: 'mute', kind: 'audio', muted: !t.enabled });
    setButton('mic', t.enabled ? icons.mic : icons.micOff, t.enabled ? 'Mute' : 'Unmute', t.enabled ? '' : 'off');
    const self = this.tiles.get(this.me?.participantId); if (self) this.renderTile(self);
  }

  async toggleCam() {
    const t = this.local.video; if (!t) { toast('No camera.', 'bad'); return; }
    t.enabled = !t.enabled;
    this.signal.send({ type: 'mute', kind: 'video', muted: !t.enabled });
    setButton('cam', t.enabled ? icons.cam : icons.camOff, t.enabled ? 'Stop video' : 'Start video', t.enabled ? '' : 'off');
    this.tiles.get(this.me?.participantId)?.el.classList.toggle('has-video', t.enabled);
  }

  async toggleScreen() {
    if (this.local.screen) { this.stopScreen(); return; }
    let stream;
    try { stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 } }); } catch (err) {
      if (err.name !== 'NotAllowedError') toast(`Screen sharing failed: ${err.message}`, 'bad'); return;
    }
    const track = stream.getVideoTracks()[0];
    this.local.screen = track;
    this.screenSender = this.pub.addTransceiver(track, { direction: 'sendonly' }).sender;
    track.addEventListener('ended', () => this.stopScreen());
    await this.publish();
    setButton('screen', icons.screen, 'Stop sharing', 'on');
  }

  async stopScreen() {
    if (!this.local.screen) return;
    this.local.screen.stop(); this.local.screen = null;
    if (this.screenSender) { this.pub.removeTrack(this.screenSender); this.screenSender = null; }
    await this.publish();
    setButton('screen', icons.screen, 'Share screen');
  }

  end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.signal?.close(); this.stats.stop();
    this.pub?.close(); this.sub?.close();
    for (const t of Object.values(this.local)) t?.stop();
    for (const el of this.audioEls.values()) { el.srcObject = null; blockedAudio.delete(el); }
    if (audioToast && blockedAudio.size === 0) { audioToast.remove(); audioToast = null; }
    for (const key of [...this.tiles.keys()]) this.removeTile(key);
    this.grid.disconnect(); clearInterval(this.clock);
    setButton('screen', icons.screen, 'Share screen');
    setConn('offline');
    $('room-title').textContent = ''; $('timer').textContent = '';
    if (reason && reason !== 'left' && reason !== 'unknown bot') toast(`The call ended: ${reason}.`, '', 6000);
    showCall(false);
    if (this.me) history.replaceState(null, '', '/');
    window.sb.call = null;
  }
}

// layout sizes the tiles: the largest 16:9 tiles that fit the grid, in the best number of
// columns.
function layout() {
  const g = $('grid'), n = g.children.length;
  if (!n || !g.clientWidth) return;
  const gap = 12, pad = 16, ar = 16 / 9;
  const W = g.clientWidth - 2 * pad, H = g.clientHeight - 2 * pad;
  let best = { w: 0, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    let w = (W - gap * (cols - 1)) / cols, h = w / ar;
    if (h * rows + gap * (rows - 1) > H) { h = (H - gap * (rows - 1)) / rows; w = h * ar; }
    if (w > best.w) best = { w, h };
  }
  g.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
  g.style.setProperty('--tile-h', `${Math.floor(best.h)}px`);
}

function showCall(inCall) { $('lobby').classList.toggle('hidden', inCall); $('call').classList.toggle('hidden', !inCall); }

// window.sb exposes the live call to the browser tests and to curious people in the console.
window.sb = { call: null };

async function begin(opts) {
  if (window.sb.call) return;
  if (!opts.name) { $('name').focus(); toast('Please enter your name first.'); return; }
  localStorage.setItem('switchboard.name', opts.name);
  const call = new Call(); window.sb.call = call;
  try { await call.start(opts); } catch { call.end(''); }
}

async function loadBots() {
  try {
    const res = await fetch('/api/bots');
    if (!res.ok) return;
    const bots = await res.json();
    const list = $('bot-list'), chips = $('bot-chips');
    for (const b of bots) {
      const o = document.createElement('option'); o.value = b.name; o.label = b.displayName || b.name; list.append(o);
      const c = document.createElement('button'); c.type = 'button'; c.className = 'btn'; c.textContent = `Call ${b.displayName || b.name}`;
      c.onclick = () => begin({ bot: b.name, name: $('name').value.trim() }); chips.append(c);
    }
  } catch { /* the list is a convenience */ }
}

function main() {
  $('name').value = params.get('name') || localStorage.getItem('switchboard.name') || '';
  $('room').value = params.get('room') || '';
  $('bot').value = params.get('call') || '';
  $('lobby-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $('room').value.trim();
    if (!room) { $('room').focus(); toast('Enter a room name, or call a bot.'); return; }
    begin({ room, name: $('name').value.trim() });
  });
  $('call-bot').onclick = () => {
    const bot = $('bot').value.trim(); if (!bot) { $('bot').focus(); return; }
    begin({ bot, name: $('name').value.trim() });
  };
  setButton('mic', icons.mic, 'Mute'); setButton('cam', icons.cam, 'Stop video');
  setButton('screen', icons.screen, 'Share screen'); setButton('leave', icons.leave, 'Leave');
  $('mic').onclick = () => window.sb.call?.toggleMic();
  $('cam').onclick = () => window.sb.call?.toggleCam();
  $('screen').onclick = () => window.sb.call?.toggleScreen();
  $('leave').onclick = () => window.sb.call?.end('left');
  loadBots();
  // Deep links: /?call=echo calls that bot at once, /?room=NAME joins that room.
  const name = $('name').value.trim();
  if (params.get('call') && name) begin({ bot: params.get('call'), name });
  else if (params.get('room') && name) begin({ room: params.get('room'), name });
  else if (params.get('call') || params.get('room')) { $('name').focus(); toast('Enter your name to join.', '', 6000); }
}

main();
