// The Switchboard web client: join a room or call a bot, publish microphone, camera and screen,
// receive everyone else, show the roster, the dominant speaker and live connection figures.
// Plain ES modules, no build step.

import { Signal } from './signal.js';
import { Stats } from './stats.js';

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

function initials(name) { return (name || '?').split(/\s+/).map((w) => w[0]).join('').slice(0, 2).toUpperCase(); }

class Call {
  constructor() {
    this.signal = null; this.pub = null; this.sub = null; this.me = null;
    this.local = { audio: null, video: null, screen: null };
    this.roster = []; this.dominant = '';
    this.tiles = new Map(); // key: participant id or 'screen:<source>' → tile
    this.audioEls = new Map();
    this.remoteStreams = new Map(); // track id → MediaStream (for tests and tiles)
    this.stats = new Stats($('stats'));
    this.pendingPub = []; this.pendingSub = [];
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
    await this.openDevices();
    try { await s.connect(); } catch (err) { setConn('offline', 'bad'); toast(`Cannot reach the service: ${err.message}`, 'bad', 0); throw err; }
    if (bot) s.send({ type: 'callBot', bot, displayName: name });
    else s.send({ type: 'join', room, displayName: name });
    $('room-title').textContent = bot ? `Calling ${bot}` : `Room ${room}`;
  }

  async openDevices() {
    const want = async (constraints, what) => {
      try { return await navigator.mediaDevices.getUserMedia(constraints); } catch (err) {
        const denied = err.name === 'NotAllowedError' || err.name === 'SecurityError';
        toast(denied ? `Access to the ${what} was denied; you can still join and listen.` : `No ${what} available (${err.name}).`, 'bad', 8000);
        return null;
      }
    };
    if (!navigator.mediaDevices?.getUserMedia) { toast('This page needs a secure context (https or localhost) for the microphone and camera.', 'bad', 0); return; }
    const mic = await want({ audio: { echoCancellation: true, noiseSuppression: true } }, 'microphone');
    const cam = await want({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } }, 'camera');
    this.local.audio = mic?.getAudioTracks()[0] || null;
    this.local.video = cam?.getVideoTracks()[0] || null;
  }

  newPC(target) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (e) => { if (e.candidate) this.signal.send({ type: 'candidate', target, candidate: e.candidate.toJSON() }); };
    pc.onconnectionstatechange = () => {
      if (target !== 'subscriber') return;
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
    this.pub = this.newPC('publisher');
    if (this.local.audio) this.pub.addTransceiver(this.local.audio, { direction: 'sendonly' });
    if (this.local.video) this.pub.addTransceiver(this.local.video, { direction: 'sendonly', sendEncodings: SIMULCAST });
    await this.publish();
    this.stats.start(this.sub);
    this.stats.pub = this.pub;
    this.ensureTile(this.me.participantId, true);
    this.renderRoster();
    showCall(true);
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

  async onOffer(sdp) {
    if (!this.sub) return;
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
      el.play().catch(() => toast('Click anywhere to hear the call (the browser blocked autoplay).', '', 8000));
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
    this.audioEls.get(id)?.remove(); this.audioEls.delete(id);
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
    const el = document.createElement('div'); el.className = 'tile' + (screenOwner ? ' screen' : '');
    el.innerHTML = '<div class="avatar"></div><video autoplay playsinline></video><div class="label"></div>';
    const video = el.querySelector('video');
    if (self) { video.muted = true; if (this.local.video) { video.srcObject = new MediaStream([this.local.video]); el.classList.add('has-video'); } }
    t = { el, video, key, self, screenOwner, label: el.querySelector('.label'), avatar: el.querySelector('.avatar') };
    this.tiles.set(key, t); $('grid').append(el);
    this.renderTile(t);
    return t;
  }

  removeTile(key) { const t = this.tiles.get(key); if (!t) return; t.observer?.disconnect(); t.el.remove(); this.tiles.delete(key); }

  person(id) { return this.roster.find((p) => p.id === id); }

  renderTile(t) {
    const id = t.screenOwner || t.key;
    const p = this.person(id);
    const name = p?.displayName || (t.self ? 'You' : '…');
    const micMuted = p?.streams?.find((s) => s.kind === 'audio')?.muted;
    t.label.replaceChildren();
    const n = document.createElement('span'); n.textContent = t.screenOwner ? `${name}'s screen` : t.self ? `${name} (you)` : name; t.label.append(n);
    if (p?.isBot) { const b = document.createElement('span'); b.className = 'badge'; b.textContent = 'bot'; t.label.append(b); }
    if (micMuted) { const m = document.createElement('span'); m.className = 'muted-icon'; m.textContent = '🔇'; m.title = 'muted'; t.label.append(m); }
    t.avatar.textContent = initials(name);
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
    for (const p of this.roster) {
      const li = document.createElement('li'); li.dataset.id = p.id;
      if (p.id === this.dominant) li.classList.add('speaking');
      const kinds = (p.streams || []).map((s) => (s.kind === 'audio' ? (s.muted ? '🔇' : '🎤') : s.kind === 'video' ? (s.muted ? '' : '📷') : '🖥')).join(' ');
      li.innerHTML = '<span class="dot"></span><span class="name"></span><span class="streams"></span>';
      li.querySelector('.name').textContent = p.displayName + (p.id === this.me?.participantId ? ' (you)' : '') + (p.isBot ? ' · bot' : '');
      li.querySelector('.streams').textContent = kinds;
      ul.append(li);
    }
  }

  onDominant(id) {
    this.dominant = id || '';
    for (const t of this.tiles.values()) this.renderTile(t);
    this.renderRoster();
  }

  onError(msg) {
    if (msg.code === 'not_found' && (msg.ref === 'callBot' || !this.me)) {
      toast(`There is no bot called “${params.get('call') || $('bot').value}”.`, 'bad', 0);
      this.end('unknown bot'); return;
    }
    toast(`The service said: ${msg.message}`, 'bad', 8000);
  }

  async toggleMic() {
    const t = this.local.audio; if (!t) { toast('No microphone.', 'bad'); return; }
    t.enabled = !t.enabled;
    this.signal.send({ type: 'mute', kind: 'audio', muted: !t.enabled });
    $('mic').textContent = t.enabled ? 'Mute' : 'Unmute'; $('mic').classList.toggle('off', !t.enabled);
  }

  async toggleCam() {
    const t = this.local.video; if (!t) { toast('No camera.', 'bad'); return; }
    t.enabled = !t.enabled;
    this.signal.send({ type: 'mute', kind: 'video', muted: !t.enabled });
    $('cam').textContent = t.enabled ? 'Stop video' : 'Start video'; $('cam').classList.toggle('off', !t.enabled);
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
    $('screen').textContent = 'Stop sharing';
  }

  async stopScreen() {
    if (!this.local.screen) return;
    this.local.screen.stop(); this.local.screen = null;
    if (this.screenSender) { this.pub.removeTrack(this.screenSender); this.screenSender = null; }
    await this.publish();
    $('screen').textContent = 'Share screen';
  }

  end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.signal?.close(); this.stats.stop();
    this.pub?.close(); this.sub?.close();
    for (const t of Object.values(this.local)) t?.stop();
    for (const el of this.audioEls.values()) el.remove();
    for (const key of [...this.tiles.keys()]) this.removeTile(key);
    setConn('offline');
    $('room-title').textContent = '';
    if (reason && reason !== 'left') toast(`The call ended: ${reason}.`, '', 6000);
    showCall(false);
    window.sb.call = null;
  }
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
