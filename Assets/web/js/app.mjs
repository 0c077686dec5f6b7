// The SceneStream web viewer: streams the scene over WebSocket (scenestream.v1), draws it with three.js from
// Debian's libjs-three (served by the server, no CDN), and lets plant engineers inspect machines (live values, trend
// charts from /api/history), navigate the plant tree, act on alerts, play the past back, and share sessions
// (presence, follow, annotate, hand off to another device). window.sceneStream.stats() is for tests and the status
// bar (see README).
import * as THREE from '/vendor/three/build/three.module.js';
import { OrbitControls } from '/vendor/three/examples/jsm/controls/OrbitControls.js';
import { decodeServer, encode, Replica, smallestThree, quaternion, DEVICE } from './wire.mjs';
import { PlantView, LabelLayer, inverseOf } from './render.mjs';
import { BindingEditor } from './author.mjs';
import { ImmersiveXR } from './xr.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEVICE_NAMES = ['device', 'headset', 'desktop', 'phone'];
const ROLE_NAMES = ['viewer', 'participant', 'host'];
const SEVERITY = ['info', 'warning', 'critical'];
const isPhone = matchMedia('(pointer: coarse)').matches || /Mobi|Android/i.test(navigator.userAgent);
const two = (n) => (n < 10 ? `0${n}` : `${n}`);
/** Local wall-clock time as HH:MM:SS (cheap: alert lists format hundreds of these). */
const hhmmss = (ms) => { const d = new Date(ms); return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`; };

// Identity: ?user=NAME (remembered), ?role=viewer|participant|host; with authentication on, ?token=JWT (kept for
// this tab, then taken out of the address bar).
const user = params.get('user') || localStorage.getItem('scenestream.user') || `user-${Math.random().toString(36).slice(2, 6)}`;
localStorage.setItem('scenestream.user', user);
if (params.get('token')) sessionStorage.setItem('scenestream.jwt', params.get('token'));
const jwt = sessionStorage.getItem('scenestream.jwt') || '';
const token = jwt || `demo:${user}${params.get('role') ? `:${params.get('role')}` : ''}`;
const device = params.get('device') ? DEVICE[params.get('device')] ?? DEVICE.desktop : (isPhone ? DEVICE.mobile : DEVICE.desktop);
$('user').textContent = user;
$('device').textContent = DEVICE_NAMES[device];
if (params.get('token')) { params.delete('token'); history.replaceState(null, '', `${location.pathname}${params.toString() ? `?${params}` : ''}`); }

/** Calls the HTTP API with the same identity as the stream. */
async function api(path) {
  const r = await fetch(path, { headers: jwt ? { Authorization: `Bearer ${jwt}` } : {} });
  if (!r.ok) throw new Error(`${path.split('?')[0]}: ${r.status} ${(await r.text()).trim()}`);
  return r.json();
}

/** Like `api`, for any method: the answer's status and text, whatever the status (the binding editor shows the
 * server's reasons as they are). */
async function request(path, { method = 'GET', body, ifMatch } = {}) {
  const headers = jwt ? { Authorization: `Bearer ${jwt}` } : {};
  if (body != null) headers['Content-Type'] = 'application/json';
  if (ifMatch) headers['If-Match'] = ifMatch;
  const r = await fetch(path, { method, headers, body, cache: 'no-store' });
  return { status: r.status, text: await r.text(), etag: r.headers.get('ETag') };
}

// State for people (the panels) and for tests (window.sceneStream).
// timeline: page-clock milliseconds of the first load's steps (module, renderer made, socket open, welcome,
// keyframe, first frame drawn), for the viewer benchmark.
const state = window.sceneStream = {
  timeline: { moduleMs: Math.round(performance.now()) },
  status: 'connecting', version: null, nodes: 0, framesApplied: 0, keyframes: 0, drawn: 0, sessionId: '', user,
  members: [], offer: null, handedOff: null, claimed: null, errors: [], alerts: new Map(), following: '', selection: [],
  selected: null, playback: { mode: 0 }, protocolVersion: 1, twins: new Map(), lastFrameAt: 0, dataTimeMs: 0,
  fps: 0, jsMsPerFrame: 0, history: null, chartData: null,
  siteAnchors: new Map(),  // the site's registered anchors by id (protocol 3, SPEC §12), in metres and floats
};

// ---------------------------------------------------------------------------------------------------- three.js
const view = $('view');
// On weak GPUs (software GL, old laptops) `?aa=0` turns antialiasing off and `?pr=1` draws at one pixel per CSS pixel.
const renderer = new THREE.WebGLRenderer({ antialias: !isPhone && params.get('aa') !== '0' });
renderer.setPixelRatio(Number(params.get('pr')) || Math.min(window.devicePixelRatio, isPhone ? 1.5 : 2));
view.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x1d2127);
scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 1.0));
const sun = new THREE.DirectionalLight(0xffffff, 0.8);
sun.position.set(50, 80, 30);
scene.add(sun);
const camera = new THREE.PerspectiveCamera(55, 1, 0.1, 3000);
camera.position.set(-20, 30, -20);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(20, 0, 20);
controls.screenSpacePanning = true;
controls.update();
state.timeline.rendererMs = Math.round(performance.now());
const plant = new PlantView(scene);
const labels = new LabelLayer(view, isPhone ? 14 : 40);
const selectionBox = new THREE.Box3Helper(new THREE.Box3(), new THREE.Color(0x4fc3f7));
selectionBox.visible = false;
scene.add(selectionBox);

// "Enter VR" / "Enter AR" only where the browser can do that immersive mode (never a "VR NOT FOUND" button over the
// view); the session asks for WebXR anchors where the browser has them, to stand the plant on the site's anchors.
const immersive = new ImmersiveXR({ renderer, scene, plant, slot: $('vr-slot'), onChange: () => renderAnchorStatus(), onError: (t) => toast(t) });
immersive.detect().then((modes) => {
  if (!modes.length) return;
  const xr = renderer.xr || renderer.vr;
  xr.enabled = true;
  // The plant stands at its anchor and the user on the floor ('local-floor': heights are the headset's own).
  xr.setReferenceSpaceType?.('local-floor');
  // Selection with the controller's ray: the trigger picks like a click.
  for (const k of [0, 1]) {
    const controller = xr.getController(k);
    scene.add(controller);
    controller.addEventListener('select', () => {
      const m = new THREE.Matrix4().extractRotation(controller.matrixWorld);
      raycaster.ray.origin.setFromMatrixPosition(controller.matrixWorld);
      raycaster.ray.direction.set(0, 0, -1).applyMatrix4(m);
      const hit = plant.pick(raycaster);
      const machine = hit ? machineOf(hit.index) : null;
      select(machine);
    });
  }
}).catch(() => {});

function resize() {
  const w = view.clientWidth, h = view.clientHeight;
  renderer.setSize(w, h);
  camera.aspect = w / Math.max(1, h);
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();

const replica = new Replica();
const editor = new BindingEditor({ plant, replica: () => replica, state, request });

function applyChange(change) {
  if (change.keyframe) plant.clear();
  for (const i of change.removed) plant.remove(i);
  for (const i of change.entered) { const n = replica.nodes.get(i); if (n) plant.upsert(i, n, replica); }
  for (const i of change.updated) { const n = replica.nodes.get(i); if (n) plant.upsert(i, n, replica); }
  if (change.keyframe || change.removed.length || change.entered.length) {
    treeDirty = true;
    if (state.selected != null && !plant.nodes.has(state.selected)) select(null);
  }
  editor.afterChange(change);
}

/** Flies the camera to look at `box` (a Box3) from its current direction. */
function flyTo(box, { instant = false, margin = 1.2 } = {}) {
  const center = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3()).length();
  const dist = Math.max(3, size * margin) / Math.tan((camera.fov * Math.PI) / 360);
  const dir = camera.position.clone().sub(controls.target).normalize();
  if (dir.y < 0.35) { dir.y = 0.35; dir.normalize(); }
  const endPos = center.clone().add(dir.multiplyScalar(dist));
  if (instant) { camera.position.copy(endPos); controls.target.copy(center); controls.update(); return; }
  const startPos = camera.position.clone(), startTarget = controls.target.clone(), t0 = performance.now();
  flight = (now) => {
    const k = Math.min(1, (now - t0) / 600), e = k * k * (3 - 2 * k);
    camera.position.lerpVectors(startPos, endPos, e);
    controls.target.lerpVectors(startTarget, center, e);
    if (k >= 1) flight = null;
  };
}
let flight = null;
let homed = false;

function plantBounds() {
  const box = new THREE.Box3();
  for (const [i, n] of plant.nodes) if (n.parent == null && !n.name.startsWith('~')) box.union(plant.bounds(i));
  return box;
}
$('home').onclick = () => { const b = plantBounds(); if (!b.isEmpty()) flyTo(b, { margin: 0.5 }); };

// ------------------------------------------------------------------------------------------------ connection
let ws = null;
let pending = Promise.resolve();
let sessionToken = sessionStorage.getItem('scenestream.token') || '';
let sceneId = '';
let requestId = 1;
let protocolVersion = 1;
let awaitingKeyframe = false;
let subscribed = false;       // presence waits for this (the server refuses it before subscribe)
let bytesThisSecond = 0, framesThisSecond = 0;
let detached = false;
let retry = 0, retryTimer = null;
let claimRequest = 0;
let jsMs = 0;                 // JavaScript time spent since the last animation frame (messages, drawing)

function send(bytes) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes); }
function toast(text) { $('toast').textContent = text; state.errors.push(text); }
function banner(text, ms = 6000) { const b = $('banner'); b.textContent = text; b.hidden = false; clearTimeout(banner.t); banner.t = setTimeout(() => { b.hidden = true; }, ms); }
function notice(text) { const n = $('notice'); n.textContent = text; n.hidden = !text; clearTimeout(notice.t); if (text) notice.t = setTimeout(() => { n.hidden = true; }, 12000); }

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (ws && ws.readyState <= WebSocket.OPEN) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stream`;
  awaitingKeyframe = false;
  subscribed = false;
  ws = new WebSocket(url, 'scenestream.v1');
  ws.binaryType = 'arraybuffer';
  state.status = 'connecting';
  setConn('connecting…', '');
  ws.onopen = () => {
    state.timeline.openMs ??= Math.round(performance.now());
    state.connects = (state.connects || 0) + 1;
    retry = 0;
    lastPongAt = performance.now();
    state.status = 'connected';
    protocolVersion = 1;
    send(encode.hello({ device, name: 'web-viewer', token, resumeToken: sessionToken, resumeVersion: sessionToken && replica.version ? replica.version : 0, maxVersion: 3 }));
  };
  ws.onmessage = (ev) => {
    const bytes = new Uint8Array(ev.data);
    bytesThisSecond += bytes.length;
    pending = pending.then(() => {
      const t0 = performance.now();
      const decoded = decodeServer(bytes, protocolVersion);
      jsMs += performance.now() - t0;
      return decoded;
    }).then((m) => {
      const t0 = performance.now();
      handle(m);
      jsMs += performance.now() - t0;
    }).catch((e) => {
      toast(`bad message: ${e.message}`);
      console.error(e);
      ws.close(4002, 'bad frame');
    });
  };
  ws.onclose = (ev) => {
    state.status = 'disconnected';
    subscribed = false;
    if (detached) { setConn('continues on another device', 'down'); return; }
    setConn(`disconnected (${ev.code})`, 'down');
    showStale();
    // Back-off from 0.5 s, at most 1 s with jitter: a plant network comes back quickly, and many viewers do not
    // all knock at once.
    const delay = Math.min(800, 500 * 1.5 ** retry++) * (0.8 + 0.4 * Math.random());
    retryTimer = setTimeout(connect, delay);
    $('retry').hidden = false;
  };
}
$('retry').onclick = () => { retry = 0; connect(); };

function setConn(text, cls) { const c = $('conn'); c.textContent = text; c.className = `pill ${cls}`; }

/** The scene is not live: grey it and say how old the data is. */
function showStale() {
  if (!view.classList.contains('stale')) state.staleSince = performance.now();
  view.classList.add('stale');
  const s = $('stale');
  s.textContent = state.dataTimeMs ? `data as of ${hhmmss(state.dataTimeMs)}` : 'no data yet';
  s.hidden = false;
}
function hideStale() {
  if (view.classList.contains('stale')) state.liveAgainAt = performance.now();
  view.classList.remove('stale'); $('stale').hidden = true; $('retry').hidden = true;
}

function handle(m) {
  switch (m.type) {
    case 'welcome': {
      state.timeline.welcomeMs ??= Math.round(performance.now());
      // The server sends every active alert after subscribing: alerts cleared while away must not linger.
      state.alerts.clear();
      protocolVersion = m.version;
      state.protocolVersion = m.version;
      state.sessionId = m.sessionId;
      sessionToken = m.sessionToken;
      sessionStorage.setItem('scenestream.token', sessionToken);
      sceneId = m.scenes[0] || '';
      $('scene-name').textContent = sceneId;
      // Only version 3 sends anchors: a server that speaks less has none to give.
      if (m.version < 3 && state.siteAnchors.size) setAnchors({ sceneId, anchors: [] });
      renderAnchorStatus();
      const code = params.get('claim');
      const takeBack = sessionStorage.getItem('scenestream.takeBack');
      if (code && !state.claimed) { claimRequest = requestId++; send(encode.handoffClaim(claimRequest, code)); }
      else if (takeBack) { sessionStorage.removeItem('scenestream.takeBack'); claimRequest = requestId++; send(encode.handoffClaim(claimRequest, '', takeBack)); }
      else subscribe();
      loadTwins();
      loadHistoryRange();
      checkAuthoring();
      break;
    }
    case 'keyframe': case 'delta': {
      if (awaitingKeyframe && m.type !== 'keyframe') return;
      let change;
      try { change = replica.apply(m); } catch (e) {
        toast(`frame refused: ${e.message}; asking for a keyframe`);
        awaitingKeyframe = true;
        send(encode.requestKeyframe(requestId++));
        return;
      }
      awaitingKeyframe = false;
      subscribed = true;
      applyChange(change);
      state.framesApplied++;
      framesThisSecond++;
      if (change.keyframe) { state.keyframes++; state.timeline.keyframeMs ??= Math.round(performance.now()); }
      state.version = replica.version;
      state.nodes = replica.nodes.size;
      state.lastFrameAt = performance.now();
      state.dataTimeMs = replica.timeMs || Date.now();
      if (state.status === 'connected') { hideStale(); setConn(state.playback.mode ? 'past' : 'live', state.playback.mode ? 'past' : 'live'); }
      send(encode.ack(m.version));
      break;
    }
    case 'alerts':
      for (const a of m.alerts) { if (a.state === 0) state.alerts.set(a.id, a); else state.alerts.delete(a.id); }
      // A busy plant raises and clears alerts every frame: the list is redrawn at most twice a second.
      if (!alertsTimer) alertsTimer = setTimeout(() => { alertsTimer = null; renderAlerts(); }, 500);
      break;
    case 'anchors':
      setAnchors(m);
      break;
    case 'roomMembers': {
      const changed = new Set(m.changes.map((c) => c.userId));
      state.members = state.members.filter((x) => !changed.has(x.userId)).concat(...m.changes.map((c) => c.members));
      renderMembers();
      break;
    }
    case 'sessionState': {
      state.members = m.members;
      state.sessionId = m.sessionId;
      state.following = m.followUserId;
      state.selection = m.selection;
      state.playback = m.playback;
      renderPlayback();
      renderMembers();
      // The server echoes our own viewpoint back: it is applied only when this device has just taken the session
      // over (the camera would otherwise jump under the user's hands).
      if (m.viewpoint && state.applyViewpoint) { state.applyViewpoint = false; applyViewpoint(m.viewpoint); }
      break;
    }
    case 'handoff':
      if (m.kind === 'offer') showOffer(m);
      if (m.kind === 'handedOff') {
        state.handedOff = m;
        detached = m.detached;
        if (detached) {
          // This tab's session lives on the other device now: forget its token, so a reload asks instead of
          // taking the session back on its own (two devices would otherwise take it from each other forever).
          sessionStorage.removeItem('scenestream.token');
          sessionStorage.setItem('scenestream.handedOff', JSON.stringify({ sessionId: state.sessionId, to: m.to }));
          sessionToken = '';
          showTakeBack(DEVICE_NAMES[m.to], state.sessionId);
        }
        banner(`This session continues on a ${DEVICE_NAMES[m.to]}`);
      }
      if (m.kind === 'claimed') {
        state.claimed = m;
        claimRequest = 0;
        sessionToken = m.sessionToken;
        sessionStorage.setItem('scenestream.token', sessionToken);
        sessionStorage.removeItem('scenestream.handedOff');
        state.applyViewpoint = true;
        banner(`Took over the session from a ${DEVICE_NAMES[m.from]}`);
        history.replaceState(null, '', location.pathname + (params.get('user') ? `?user=${encodeURIComponent(params.get('user'))}` : ''));
      }
      if (m.kind === 'sessions') renderSessions(m.sessions);
      break;
    case 'pong':
      lastPongAt = performance.now();
      if (state.status === 'connected' && subscribed && !view.classList.contains('stale')) break;
      if (state.status === 'connected' && subscribed) hideStale();
      break;
    case 'error':
      if (claimRequest && (m.requestId === claimRequest || m.requestId === 0) && !state.claimed) {
        // A used, expired or mistyped handoff link: fall back to the live view and say why.
        claimRequest = 0;
        notice(`That handoff link could not be used (${m.message}). Showing the live plant instead.`);
        history.replaceState(null, '', location.pathname);
        params.delete('claim');
        subscribe();
        toast(`error ${m.code}: ${m.message}`);
        break;
      }
      toast(`error ${m.code}: ${m.message}`);
      if (/no history/.test(m.message)) notice(`No history at that time: ${m.message.replace(/\(kept from (\d+)\)/, (_, t) => `(kept from ${hhmmss(Number(t))})`).replace(/at (\d{12,})/, (_, t) => `at ${hhmmss(Number(t))}`)}`);
      break;
    default:
      break;
  }
}

function subscribe() { send(encode.subscribe({ requestId: requestId++, sceneId, rateHz: 30 })); }

// ------------------------------------------------------------------------------------------------ site anchors
/** The site's anchors (protocol 3 `anchors`: the whole set, replacing the last): roots on a registered anchor are
 * placed at its site pose (or, in an immersive session that resolved one by its WebXR handle, from there). */
function setAnchors(m) {
  if (sceneId && m.sceneId !== sceneId) return;
  state.siteAnchors = new Map(m.anchors.map((a) => [a.id, {
    id: a.id,
    position: a.position.map((v) => v / 1000),
    rotation: a.rotation.map((v) => v / 1e6),
    handles: Object.fromEntries(a.handles.map((h) => [h.platform, h.value])),
    updatedMs: a.updatedMs,
  }]));
  plant.setSitePoses(state.siteAnchors);
  immersive.setRegistry([...state.siteAnchors.values()]);
  renderAnchorStatus();
}

/** "Anchors: 2 registered · WebXR anchors not available in this browser", in the Session tab. */
function renderAnchorStatus() {
  const el = $('anchor-status');
  if (!el) return;
  const n = state.siteAnchors.size;
  const registered = state.protocolVersion >= 3 || n ? (n ? `${n} registered` : 'none registered') : 'not sent (protocol 2 server)';
  const text = `Anchors: ${registered} · ${immersive.status()}`;
  if (el.textContent !== text) el.textContent = text;
  el.title = [...state.siteAnchors.values()].map((a) => `${a.id}: (${a.position.map((v) => v.toFixed(3)).join(', ')}) m`
    + `${Object.keys(a.handles).length ? ` · ${Object.keys(a.handles).sort().join(', ')}` : ''}`).join('\n');
}

// --------------------------------------------------------------------------------------- handoff, take back
function showTakeBack(to, sessionId) {
  $('takeback-text').textContent = `This session continues on the ${to}. Take it back here?`;
  $('takeback').hidden = false;
  $('takeback-yes').onclick = () => {
    $('takeback').hidden = true;
    sessionStorage.removeItem('scenestream.handedOff');
    sessionStorage.setItem('scenestream.takeBack', sessionId);
    detached = false; sessionToken = '';
    connect();
  };
  $('takeback-new').onclick = () => {
    $('takeback').hidden = true;
    sessionStorage.removeItem('scenestream.handedOff');
    detached = false; sessionToken = '';
    connect();
  };
}

function showOffer(m) {
  state.offer = m;
  $('offer-box').hidden = false;
  $('offer-code').textContent = m.code;
  const url = `${location.origin}/?claim=${encodeURIComponent(m.code)}&user=${encodeURIComponent(user)}`;
  $('offer-url').textContent = url;
  $('offer-url').href = url;
  $('offer-expiry').textContent = `valid until ${hhmmss(m.expiresMs)}`;
  if (window.qrcode) {
    const qr = window.qrcode(0, 'M');
    qr.addData(url);
    qr.make();
    $('qr').innerHTML = qr.createSvgTag({ cellSize: 4, margin: 2 });
  }
}

function renderSessions(list) {
  const ul = $('sessions');
  ul.innerHTML = list.length ? '' : '<li>none</li>';
  for (const s of list) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.textContent = `Take over ${DEVICE_NAMES[s.device]} (${s.sessionId})`;
    b.onclick = () => { claimRequest = requestId++; send(encode.handoffClaim(claimRequest, '', s.sessionId)); };
    li.appendChild(b);
    ul.appendChild(li);
  }
}

$('offer').onclick = () => send(encode.handoffOffer(requestId++, false));
$('claim').onclick = () => { const c = $('claim-code').value.trim(); if (c) { claimRequest = requestId++; send(encode.handoffClaim(claimRequest, c)); } };
$('list-sessions').onclick = () => send(encode.listSessions(requestId++));

function renderMembers() {
  const list = $('members');
  list.innerHTML = '';
  $('room').textContent = `${state.members.length} here`;
  for (const mem of state.members) {
    const li = document.createElement('li');
    const dot = document.createElement('span');
    dot.textContent = '● ';
    dot.style.color = `#${(mem.color >>> 8).toString(16).padStart(6, '0')}`;
    li.append(dot, `${mem.displayName} `);
    const small = document.createElement('small');
    small.textContent = `${DEVICE_NAMES[mem.device]} · ${ROLE_NAMES[mem.role]} `;
    li.appendChild(small);
    if (mem.userId !== user) {
      const b = document.createElement('button');
      b.textContent = state.following === mem.userId ? 'unfollow' : 'follow';
      b.onclick = () => send(encode.follow(state.following === mem.userId ? '' : mem.userId));
      li.appendChild(b);
    }
    list.appendChild(li);
  }
  renderFollowing();
}

function renderFollowing() {
  const f = $('following');
  f.hidden = !state.following;
  if (state.following) f.textContent = `following ${state.following}${state.playback.mode ? ` · PAST ${hhmmss(state.playback.cursorMs)}` : ''}`;
}

// ---------------------------------------------------------------------------------------------- twins, inspect
async function loadTwins() {
  try {
    const { twins } = await api('/api/twins');
    state.twins = new Map(twins.filter((t) => t.node).map((t) => [t.node, t]));
    treeDirty = true;
  } catch (e) { toast(`twins: ${e.message}`); }
}

/** The machine a node belongs to: the nearest ancestor (or itself) that stands for a twin. */
let machineCache = new Map(), machineCacheKey = '';
function machineOf(i) {
  const key = `${plant.version}/${state.twins.size}`;
  if (key !== machineCacheKey) { machineCache = new Map(); machineCacheKey = key; }
  if (machineCache.has(i)) return machineCache.get(i);
  let k = i, guard = 0, found = null;
  while (k != null && guard++ < 256) {
    if (state.twins.has(plant.path(k))) { found = k; break; }
    k = plant.nodes.get(k)?.parent;
  }
  machineCache.set(i, found);
  return found;
}

let inspectTimer = null;
let chartProperty = '';

/** Whether this user may edit the plant's bindings: the server lets them read bindings.json (admins; anyone in open
 * mode on a plant read from a folder). */
async function checkAuthoring() {
  let ok = false;
  try { ok = (await request('/api/plant/bindings.json')).status === 200; } catch { ok = false; }
  editor.setAllowed(ok);
}

/** Selects machine node `i` (or nothing): tells the room, opens the panel, starts its live values. */
function select(i, { fly = false } = {}) {
  state.selected = i;
  clearInterval(inspectTimer);
  if (i == null) {
    dropChart();
    send(encode.select([]));
    state.selection = [];
    selectionBox.visible = false;
    $('inspect').hidden = true;
    $('selection').hidden = false;
    state.inspect = null;
    editor.select(null);
    renderTree();
    return;
  }
  send(encode.select([i]));
  state.selection = [i];
  const path = plant.path(i);
  const twin = state.twins.get(path);
  editor.select({ index: i, path, twin: twin?.id });
  $('selection').hidden = true;
  $('inspect').hidden = false;
  $('inspect-title').textContent = path;
  $('props').innerHTML = '';
  $('inspect-alerts').innerHTML = '';
  dropChart();
  $('chart-head').textContent = '';
  chartProperty = '';
  showTab('inspect');
  updateSelectionBox();
  if (fly) flyTo(plant.bounds(i));
  if (twin) {
    refreshInspect(twin.id);
    inspectTimer = setInterval(() => refreshInspect(twin.id), 1000);
  } else {
    $('inspect-meta').textContent = 'no twin bound to this part';
  }
  renderTree();
}

function updateSelectionBox() {
  if (state.selected == null || !plant.nodes.has(state.selected)) { selectionBox.visible = false; return; }
  selectionBox.box.copy(plant.bounds(state.selected)).expandByScalar(0.15);
  selectionBox.visible = true;
}

let inspecting = false;
async function refreshInspect(twinId) {
  if (inspecting) return;  // the last answer is not back yet
  inspecting = true;
  const current = () => state.selected != null && state.twins.get(plant.path(state.selected))?.id === twinId;
  let t;
  try { t = await api(`/api/twin?id=${encodeURIComponent(twinId)}`); } catch (e) {
    if (current()) $('inspect-meta').textContent = e.message;
    return;
  } finally { inspecting = false; }
  if (!current()) return;
  state.inspect = t;
  $('inspect-meta').textContent = `${t.model || 'twin'} ${t.twin}${t.overdue ? ' · OVERDUE: no update for a while' : ''}`
    + (state.playback.mode ? ` · values now; the view shows ${hhmmss(state.playback.cursorMs)}` : '');
  const table = $('props');
  const names = Object.keys(t.properties).sort();
  table.innerHTML = '';
  for (const k of names) {
    const p = t.properties[k];
    const stale = p.quality === 'good' && t.expectedPeriodMs && p.ageMs > Math.max(5000, 5 * t.expectedPeriodMs);
    const q = stale ? 'stale' : p.quality;
    const tr = document.createElement('tr');
    tr.dataset.property = k;
    if (k === chartProperty) tr.className = 'on';
    const v = typeof p.value === 'number' ? (Math.abs(p.value) >= 100 ? p.value.toFixed(1) : p.value.toFixed(3).replace(/\.?0+$/, '')) : String(p.value);
    tr.innerHTML = '<td class="k"></td><td class="v"></td><td class="q"></td><td class="a muted"></td>';
    tr.children[0].textContent = k;
    tr.children[1].textContent = `${v}${p.unit ? ` ${p.unit}` : ''}`;
    tr.children[2].textContent = q;
    tr.children[2].className = `q q-${q}`;
    tr.children[3].textContent = p.ageMs < 1000 ? 'now' : `${Math.round(p.ageMs / 1000)} s ago`;
    tr.onclick = () => { chartProperty = k; loadChart(); };
    table.appendChild(tr);
  }
  const al = $('inspect-alerts');
  al.innerHTML = '';
  for (const a of t.alerts) {
    const li = document.createElement('li');
    li.className = a.severity === 'critical' ? 'sev2' : a.severity === 'warning' ? 'sev1' : 'sev0';
    li.textContent = `${hhmmss(a.timeMs)} ${a.severity}: ${a.message}`;
    al.appendChild(li);
  }
  editor.values();
  if (!chartProperty) {
    chartProperty = names.find((k) => typeof t.properties[k].value === 'number' && (k === 'temperature' || k === 'level'))
      || names.find((k) => typeof t.properties[k].value === 'number') || '';
    loadChart();
  } else if (Date.now() - (state.chartData?.loadedAt || 0) > 5000 && !state.playback.mode) loadChart();
}

// ------------------------------------------------------------------------------------------------------ trend
let chart = null;
let chartTouch = null;
// The trend follows its box: a scrollbar appearing in the panel (a long table, the binding editor) narrows it.
new ResizeObserver((entries) => { if (chart && entries[0].contentRect.width > 0) chart.resize(); }).observe($('chart'));
let chartRequest = 0;   // answers to older chart requests are dropped

/** Removes the chart (its listeners too) and forgets its data. */
function dropChart() {
  chartRequest++;
  if (chart) { chart.destroy(); chart = null; }
  $('chart').innerHTML = '';
  $('chart-head').textContent = '';
  state.chartData = null;
}

/** The trend of the selected machine's chosen property over the last 10 minutes (or around the playback cursor). */
async function loadChart() {
  const t = state.inspect;
  if (!t || !chartProperty) return;
  const cursor = state.playback.mode ? state.playback.cursorMs : Date.now();
  const to = state.playback.mode ? cursor + 300_000 : Date.now();
  const from = Math.max(state.history?.fromMs || 0, to - 600_000);
  const q = `/api/history?twin=${encodeURIComponent(t.twin)}&property=${encodeURIComponent(chartProperty)}&from=${Math.floor(from)}&to=${Math.floor(to)}&points=300`;
  const mine = ++chartRequest, property = chartProperty;
  let h;
  try { h = await api(q); } catch (e) { if (mine === chartRequest) $('chart-head').textContent = e.message; return; }
  if (mine !== chartRequest || !state.inspect || state.inspect.twin !== t.twin || property !== chartProperty) return;
  state.chartData = { ...h, query: q, loadedAt: Date.now() };
  for (const tr of $('props').children) tr.className = tr.dataset.property === chartProperty ? 'on' : '';
  $('chart-head').textContent = `${chartProperty}${h.unit ? ` (${h.unit})` : ''} · ${h.samples} samples · min/mean/max per ${h.bucketMs < 1000 ? `${h.bucketMs} ms` : `${Math.round(h.bucketMs / 1000)} s`} · click to play back from there`;
  const rows = h.points.map((p) => [new Date(p.t + h.bucketMs / 2), [p.min, p.mean, p.max]]);
  if (h.before && rows.length === 0) rows.push([new Date(h.fromMs), [h.before.v, h.before.v, h.before.v]]);
  if (rows.length === 0) { if (chart) { chart.destroy(); chart = null; } $('chart').textContent = 'no values in this range'; return; }
  if (!window.Dygraph) { $('chart').textContent = 'chart library missing (/vendor/dygraphs)'; return; }
  const options = {
    customBars: true, labels: ['time', chartProperty], colors: ['#4fc3f7'], axisLabelFontSize: 10, legend: 'follow',
    axes: { x: { axisLabelFormatter: (d) => (to - from > 900_000 ? hhmmss(d.getTime()).slice(0, 5) : hhmmss(d.getTime())) } },
    dateWindow: [from, to],
    underlayCallback: (ctx, area, g) => {
      const c = state.playback.mode ? state.playback.cursorMs : null;
      if (c == null) return;
      const x = g.toDomXCoord(c);
      ctx.fillStyle = '#9b51e0';
      ctx.fillRect(x - 1, area.y, 2, area.h);
    },
    clickCallback: (e, x) => seek(Math.round(x)),
    // dygraphs takes touches for its own panning: a tap seeks like a click.
    interactionModel: Object.assign({}, window.Dygraph.defaultInteractionModel, {
      touchstart: (ev) => { chartTouch = { x: ev.touches[0].pageX, y: ev.touches[0].pageY, t: performance.now() }; },
      touchmove: () => {},
      touchend: (ev, g) => {
        const t = chartTouch, c = ev.changedTouches[0];
        chartTouch = null;
        if (!t || Math.hypot(c.pageX - t.x, c.pageY - t.y) > 10 || performance.now() - t.t > 700) return;
        const r = g.graphDiv.getBoundingClientRect();
        seek(Math.round(g.toDataXCoord(c.clientX - r.left)));
      },
    }),
  };
  if (chart) chart.updateOptions({ file: rows, ...options });
  else { $('chart').innerHTML = ''; chart = new window.Dygraph($('chart'), rows, options); }
}

// --------------------------------------------------------------------------------------------------- alerts
let alertsTimer = null;
const acked = new Set(JSON.parse(localStorage.getItem('scenestream.acked') || '[]'));
let severityShown = new Set([0, 1, 2]);
function alertNode(a) { return a.node != null && plant.nodes.has(a.node) ? a.node : null; }

let alertsShown = '';
function renderAlerts() {
  const list = $('alerts');
  const all = [...state.alerts.values()].sort((x, y) => y.severity - x.severity || y.timeMs - x.timeMs);
  const showAcked = $('show-acked').checked;
  // Rebuilt only when what it shows changed (a list rebuilt under the pointer loses clicks).
  const signature = `${showAcked}|${[...severityShown]}|${all.map((a) => `${a.id}:${a.timeMs}:${acked.has(a.id)}`).join(',')}`;
  if (signature === alertsShown) return;
  alertsShown = signature;
  list.innerHTML = '';
  for (const a of all) {
    if (!severityShown.has(a.severity) || (acked.has(a.id) && !showAcked)) continue;
    const li = document.createElement('li');
    li.className = `sev${a.severity}${acked.has(a.id) ? ' acked' : ''}`;
    li.dataset.alert = a.id;
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = hhmmss(a.timeMs);
    const msg = document.createElement('span');
    msg.textContent = `${SEVERITY[a.severity] || a.severity}: ${a.message}`;
    li.append(t, msg);
    if (!acked.has(a.id)) {
      const b = document.createElement('button');
      b.textContent = 'ack';
      b.title = 'Acknowledge (on this device)';
      b.onclick = (ev) => { ev.stopPropagation(); acked.add(a.id); localStorage.setItem('scenestream.acked', JSON.stringify([...acked].slice(-500))); renderAlerts(); };
      li.appendChild(b);
    }
    li.onclick = () => { const n = alertNode(a); const m = n == null ? null : machineOf(n) ?? n; if (m != null) select(m, { fly: true }); };
    list.appendChild(li);
  }
  const open = all.filter((a) => !acked.has(a.id)).length;
  $('alert-badge').textContent = String(open);
}
for (const box of document.querySelectorAll('#sev-filter input[value]')) {
  box.onchange = () => { severityShown = new Set([...document.querySelectorAll('#sev-filter input[value]')].filter((x) => x.checked).map((x) => Number(x.value))); renderAlerts(); };
}
$('show-acked').onchange = renderAlerts;

// --------------------------------------------------------------------------------------------------- tree
let treeDirty = true;
const expanded = new Set();

/** The asset tree: halls → lines → machines (nodes that stand for twins, and their ancestors); search by id or label. */
function renderTree() {
  treeDirty = false;
  const ul = $('tree');
  const q = $('search').value.trim().toLowerCase();
  ul.innerHTML = '';
  const machines = [...state.twins.keys()].map((p) => plant.indexOf(p)).filter((i) => i != null);
  const keep = new Set();
  for (const m of machines) {
    const n = plant.nodes.get(m);
    const text = `${plant.path(m)} ${n.label}`.toLowerCase();
    if (q && !text.includes(q)) continue;
    let k = m;
    while (k != null) { keep.add(k); k = plant.nodes.get(k)?.parent; }
  }
  const isMachine = new Set(machines);
  const add = (i, depth) => {
    const n = plant.nodes.get(i);
    const li = document.createElement('li');
    li.style.setProperty('--depth', depth);
    li.dataset.node = plant.path(i);
    const kids = [...n.children].filter((c) => keep.has(c) && !isMachine.has(i));
    const open = q || expanded.has(i) || depth === 0;
    const tw = document.createElement('span');
    tw.className = 'twisty';
    tw.textContent = kids.length ? (open ? '▾' : '▸') : '';
    li.append(tw, `${n.name}${n.label && n.label !== n.name ? ` — ${n.label}` : ''}`);
    if (state.selected === i) li.className = 'on';
    li.onclick = () => {
      if (isMachine.has(i)) select(i, { fly: true });
      else { if (expanded.has(i)) expanded.delete(i); else expanded.add(i); renderTree(); flyTo(plant.bounds(i)); }
    };
    ul.appendChild(li);
    if (open) for (const c of kids.sort((a, b) => plant.path(a).localeCompare(plant.path(b)))) add(c, depth + 1);
  };
  const roots = [...keep].filter((i) => plant.nodes.get(i).parent == null).sort((a, b) => plant.path(a).localeCompare(plant.path(b)));
  for (const r of roots) add(r, 0);
  if (!roots.length) ul.innerHTML = `<li class="muted">${state.twins.size ? 'nothing matches' : 'no machines visible to you'}</li>`;
  renderLayers();
}
$('search').oninput = () => renderTree();

function renderLayers() {
  const box = $('layers');
  const names = [...plant.layers.entries()].filter(([l, k]) => l && k > 0).map(([l]) => l).sort();
  if (box.dataset.names === names.join(',')) return;
  box.dataset.names = names.join(',');
  box.innerHTML = '';
  for (const l of names) {
    const label = document.createElement('label');
    const c = document.createElement('input');
    c.type = 'checkbox';
    c.checked = !plant.hiddenLayers.has(l);
    c.onchange = () => plant.setLayerHidden(l, !c.checked);
    label.append(c, ` ${l}`);
    box.appendChild(label);
  }
}

// ---------------------------------------------------------------------------------------------- tabs
function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.className = b.dataset.tab === name ? 'on' : '';
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== `tab-${name}`;
  if (name === 'plant' && treeDirty) renderTree();
}
for (const b of document.querySelectorAll('#tabs button')) b.onclick = () => showTab(b.dataset.tab);

// --------------------------------------------------------------------------------------------------- playback
async function loadHistoryRange() {
  try { state.history = await api('/api/history'); renderPlayback(); } catch (e) { toast(`history: ${e.message}`); }
}
setInterval(() => { if (state.status === 'connected') loadHistoryRange(); }, 5000);
let scrubbing = false;

function renderPlayback() {
  const pb = state.playback, s = $('scrub');
  const from = state.history?.fromMs ?? Date.now() - 60_000;
  const to = Math.max(Date.now(), from + 1000);
  if (!scrubbing) {
    s.min = String(from);
    s.max = String(to);
    s.value = String(pb.mode ? pb.cursorMs : to);
  }
  const past = $('past');
  past.hidden = !pb.mode;
  if (pb.mode) {
    past.textContent = `PAST — ${hhmmss(pb.cursorMs)}${pb.mode === 2 ? ` ▶ ${pb.speedMilli / 1000}×` : ' (paused)'}`;
    $('scrub-time').textContent = hhmmss(pb.cursorMs);
    setConn('past', 'past');
  } else {
    $('scrub-time').textContent = 'live';
    if (state.status === 'connected' && subscribed) setConn('live', 'live');
  }
  renderFollowing();
  chart?.updateOptions({});
}

/** Playback of one's own: following someone carries their playback, so scrubbing stops following first. */
function ownPlayback() {
  if (!state.following) return;
  notice(`Stopped following ${state.following} to play back on your own.`);
  send(encode.follow(''));
  state.following = '';
}

function seek(ms) {
  ownPlayback();
  const from = state.history?.fromMs ?? 0;
  const t = Math.max(from, Math.min(Date.now(), ms));
  send(encode.playback(0, Math.round(t)));
}
const scrub = $('scrub');
scrub.oninput = () => { scrubbing = true; $('scrub-time').textContent = hhmmss(Number(scrub.value)); };
scrub.onchange = () => { scrubbing = false; seek(Number(scrub.value)); };
$('play').onclick = () => ownPlayback() || send(encode.playback(1, state.playback.mode ? 0 : Date.now() - 60_000, Number($('speed').value)));
$('pause').onclick = () => ownPlayback() || send(encode.playback(2));
$('live').onclick = () => ownPlayback() || send(encode.playback(3));
$('step-back').onclick = () => seek((state.playback.mode ? state.playback.cursorMs : Date.now()) - 10_000);
$('step-fwd').onclick = () => { if (state.playback.mode) seek(state.playback.cursorMs + 10_000); };
$('speed').onchange = () => { if (state.playback.mode === 2) send(encode.playback(1, 0, Number($('speed').value))); };
setInterval(() => { if (!state.playback.mode) renderPlayback(); }, 1000);

// --------------------------------------------------------------------------------------------------- picking
const raycaster = new THREE.Raycaster();
let down = null;
function rayAt(clientX, clientY) {
  const r = renderer.domElement.getBoundingClientRect();
  raycaster.setFromCamera(new THREE.Vector2(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1), camera);
  return raycaster;
}
// A tap or click is a press and release close together in place and time; a drag never selects.
// Fingers on the screen now: a pinch or two-finger pan is never a tap, not even when its last finger lifts.
const pointersDown = new Set();
let multiTouch = false;
renderer.domElement.addEventListener('pointerdown', (ev) => {
  pointersDown.add(ev.pointerId);
  if (pointersDown.size > 1) multiTouch = true;
  down = ev.isPrimary && pointersDown.size === 1 ? { x: ev.clientX, y: ev.clientY, t: performance.now(), id: ev.pointerId } : null;
});
const pointerGone = (ev) => {
  pointersDown.delete(ev.pointerId);
  if (pointersDown.size === 0) setTimeout(() => { if (pointersDown.size === 0) multiTouch = false; }, 0);
};
renderer.domElement.addEventListener('pointercancel', (ev) => { pointerGone(ev); down = null; });
renderer.domElement.addEventListener('pointerup', (ev) => {
  const wasMulti = multiTouch;
  pointerGone(ev);
  if (!down || down.id !== ev.pointerId || wasMulti) { down = null; return; }
  const moved = Math.hypot(ev.clientX - down.x, ev.clientY - down.y), held = performance.now() - down.t;
  down = null;
  if (moved > 8 || held > 700) return;
  const hit = plant.pick(rayAt(ev.clientX, ev.clientY));
  const m = hit ? machineOf(hit.index) : null;
  if (m == null) { if (state.selected != null) select(null); return; }
  const now = performance.now();
  const again = lastTap && lastTap.node === m && now - lastTap.t < 400;
  lastTap = { node: m, t: now };
  if (again) flyTo(plant.bounds(m));
  else if (m !== state.selected) select(m);
});
let lastTap = null;
renderer.domElement.addEventListener('dblclick', (ev) => {
  const hit = plant.pick(rayAt(ev.clientX, ev.clientY));
  const m = hit ? machineOf(hit.index) : null;
  if (m != null) flyTo(plant.bounds(m));
});
// The desktop's pointer: the 3D point under the mouse, sent with presence.
let pointerAt = null, pointerMoved = false, lastPointerPick = 0;
renderer.domElement.addEventListener('pointermove', (ev) => { if (ev.pointerType === 'mouse') { pointerMoved = { x: ev.clientX, y: ev.clientY }; } });
renderer.domElement.addEventListener('pointerleave', () => { pointerAt = null; });

$('annotate').onclick = () => {
  const text = $('note-text').value.trim();
  if (!text || state.selected == null) { toast('select a machine and type a note'); return; }
  send(encode.annotate({ requestId: requestId++, node: state.selected, offset: [0, 500, 0], text }));
  $('note-text').value = '';
};

// ------------------------------------------------------------------------------------------ presence + follow
let anchorCache = { version: -1, anchor: '' };
function presenceAnchor() {
  if (anchorCache.version !== plant.version) {
    anchorCache = { version: plant.version, anchor: '' };
    for (const [, n] of plant.nodes) if (n.parent == null && n.anchor && !n.name.startsWith('~')) { anchorCache.anchor = n.anchor; break; }
  }
  return anchorCache.anchor;
}

function sendPresence() {
  const a = presenceAnchor();
  if (!a || !subscribed || state.status !== 'connected') return;
  // Poses are sent in the anchor's frame (where this viewer draws that anchor: registered or side by side).
  const toAnchor = inverseOf(plant.anchorMatrix(a));
  const p = camera.position.clone().applyMatrix4(toAnchor);
  const q = new THREE.Quaternion().setFromRotationMatrix(toAnchor).multiply(camera.quaternion);
  const mm = (v) => [v.x, v.y, v.z].map((x) => Math.round(x * 1000));
  const now = performance.now();
  if (pointerMoved && now - lastPointerPick > 400) {
    lastPointerPick = now;
    const hit = plant.pick(rayAt(pointerMoved.x, pointerMoved.y));
    pointerAt = hit ? hit.point.clone().applyMatrix4(toAnchor) : null;
    pointerMoved = false;
  }
  send(encode.presence({
    head: { anchor: a, position: mm(p), rotation: smallestThree([q.x, q.y, q.z, q.w], 12) },
    pointer: pointerAt ? { anchor: a, position: mm(pointerAt), rotation: smallestThree([0, 0, 0, 1], 12) } : null,
  }));
}
setInterval(sendPresence, 100);

function applyViewpoint(v) {
  const frame = plant.anchorMatrix(v.anchor);
  const origin = new THREE.Vector3().setFromMatrixPosition(frame);
  const [x, y, z, w] = quaternion(v.rotation, 12);
  const q = new THREE.Quaternion().setFromRotationMatrix(frame).multiply(new THREE.Quaternion(x, y, z, w));
  camera.position.set(v.position[0] / 1000, v.position[1] / 1000, v.position[2] / 1000).applyMatrix4(frame);
  camera.quaternion.copy(q);
  // The orbit pivot: where the view ray meets the floor (or 20 m ahead when it looks up).
  const dir = new THREE.Vector3(0, 0, -1).applyQuaternion(q);
  const t = dir.y < -0.05 ? (origin.y - camera.position.y) / dir.y : 20;
  controls.target.copy(camera.position).add(dir.multiplyScalar(Math.min(200, t)));
  controls.update();
  homed = true;
}

function followTick() {
  const path = `~presence.${presenceAnchor()}/${state.following}/head`;
  const i = plant.indexOf(path);
  const n = i == null ? null : plant.nodes.get(i);
  if (!n) return;
  n.world.decompose(camera.position, camera.quaternion, new THREE.Vector3());
  const ahead = new THREE.Vector3(0, 0, -10).applyQuaternion(camera.quaternion).add(camera.position);
  controls.target.copy(ahead);
}

// --------------------------------------------------------------------------------------------------- labels
function labelItems() {
  const items = [];
  const alerting = new Map();
  for (const a of state.alerts.values()) {
    const n = alertNode(a);
    if (n == null || acked.has(a.id)) continue;
    const m = machineOf(n) ?? n;
    const cur = alerting.get(m);
    if (!cur || cur.severity < a.severity) alerting.set(m, { severity: a.severity, count: (cur?.count || 0) + 1 });
    else cur.count++;
  }
  for (const i of plant.labelled) {
    const n = plant.nodes.get(i);
    if (!n || !n.shown) continue;
    const avatar = n.name === 'head' && plant.path(i).startsWith('~presence');
    const m = alerting.has(i) || state.selected === i ? i : null;
    // A binding's preview (not saved yet) is drawn first and marked as such.
    const preview = editor.previewIndex === i;
    items.push({ key: i, text: n.label, position: plant.worldPosition(i).add(new THREE.Vector3(0, avatar ? 0.5 : 0.4, 0)),
      priority: preview ? 6 : state.selected === i ? 4 : avatar ? 3 : m != null ? 2 : 0,
      className: preview ? 'preview' : state.selected === i ? 'sel' : avatar ? 'avatar' : '' });
  }
  for (const [m, a] of alerting) {
    const b = plant.bounds(m);
    const top = new THREE.Vector3((b.min.x + b.max.x) / 2, b.max.y + 0.6, (b.min.z + b.max.z) / 2);
    items.push({ key: `alert-${m}`, text: `⚠ ${a.count > 1 ? `${a.count} ` : ''}${plant.nodes.get(m).name}`, position: top, priority: 2 + a.severity / 10, className: `alert${a.severity}` });
  }
  if (state.selected != null && !plant.labelled.has(state.selected) && plant.nodes.has(state.selected)) {
    const b = plant.bounds(state.selected);
    items.push({ key: state.selected, text: plant.nodes.get(state.selected).name, position: new THREE.Vector3((b.min.x + b.max.x) / 2, b.max.y + 0.3, (b.min.z + b.max.z) / 2), priority: 5, className: 'sel' });
  }
  return items;
}

// --------------------------------------------------------------------------------------------------- loop
let frames = 0, jsMsSum = 0, rafMsSum = 0, lastLabels = 0, lastCamera = '';
renderer.setAnimationLoop((now) => {
  const t0 = performance.now();
  if (flight) flight(now);
  if (state.following) followTick(); else controls.update();
  const xr = renderer.xr || renderer.vr;
  const presenting = xr && (typeof xr.isPresenting === 'function' ? xr.isPresenting() : xr.isPresenting);
  if (presenting) immersive.tick();
  plant.flush(camera, view.clientHeight, !!presenting);
  if (!homed && plant.nodes.size > 0) {
    const b = plantBounds();
    if (!b.isEmpty() && [...plant.batches.values()].some((x) => x.parts)) { homed = true; flyTo(b, { instant: true, margin: 0.5 }); }
  }
  if (state.selected != null && (plant.dirty.size || now - lastLabels > 500)) updateSelectionBox();
  const cam = `${camera.position.toArray().map((x) => x.toFixed(2))}`;
  if (now - lastLabels > 100 || cam !== lastCamera) {
    lastLabels = now;
    lastCamera = cam;
    labels.place(labelItems(), camera, view.clientWidth, view.clientHeight);
  }
  const r0 = performance.now();
  renderer.render(scene, camera);
  if (!state.timeline.firstRenderMs && renderer.info.render.calls > 0) {
    state.timeline.firstRenderMs = Math.round(performance.now());
    state.timeline.firstRenderCostMs = Math.round(performance.now() - r0);
  }
  countDrawn();
  lastDrawCalls = renderer.info.render.calls;
  rafMsSum += performance.now() - t0;
  jsMs += performance.now() - t0;
  jsMsSum += jsMs;
  jsMsSecond += jsMs;
  jsMs = 0;
  frames++;
});
let lastDrawCalls = 0;
/** Nodes drawn with their model (instances of loaded assets). */
function countDrawn() { state.drawn = [...plant.batches.values()].reduce((k, b) => k + (b.parts && b.parts.length ? b.count : 0), 0); }

setInterval(() => {
  $('rate').textContent = `${framesThisSecond} frames/s`;
  $('bw').textContent = `${(bytesThisSecond / 1000).toFixed(1)} kB/s`;
  $('version').textContent = String(state.version ?? '–');
  $('nodes').textContent = String(state.nodes);
  state.framesPerSecond = framesThisSecond;
  state.fps = frames;
  state.jsMsPerFrame = frames ? jsMsSum / frames : 0;
  state.drawMsPerFrame = frames ? rafMsSum / frames : 0;
  frames = 0; jsMsSum = 0; rafMsSum = 0;
  framesThisSecond = 0;
  bytesThisSecond = 0;
  countDrawn();
  if (treeDirty && !$('tab-plant').hidden) renderTree();
  state.jsMsPerSecond = jsMsSecond;
  jsMsSecond = 0;
  // The server answers pings: connected but no answer for 3 s means the data may be stale though the socket is
  // open (a quiet plant sends no frames, so their absence says nothing).
  if (state.status === 'connected') {
    if (performance.now() - lastPongAt > 3000) showStale();
    send(encode.ping(++pingNonce));
  }
}, 1000);
let pingNonce = 0, lastPongAt = performance.now(), jsMsSecond = 0;

/** For tests and the status bar: what the page and the renderer show now (see README). */
state.stats = () => ({
  connected: state.status === 'connected' && $('stale').hidden,
  version: state.version,
  nodes: state.nodes,
  drawCalls: lastDrawCalls,
  labelsInDom: document.querySelectorAll('.labels .label').length,
  labelledNodes: plant.labelled.size,
  fps: state.fps,
  jsMsPerFrame: Math.round(state.jsMsPerFrame * 100) / 100,
  jsMsPerSecond: Math.round(state.jsMsPerSecond || 0),
  drawMsPerFrame: Math.round((state.drawMsPerFrame || 0) * 100) / 100,
  selected: state.selected == null ? null : plant.path(state.selected),
  past: state.playback.mode ? state.playback.cursorMs : null,
  triangles: renderer.info.render.triangles,
});
/** Selects the machine of node `nodeId` (an id such as "hall-a/line-01/press-01"); returns the machine's id. */
state.select = (nodeId) => {
  const i = plant.indexOf(nodeId);
  if (i == null) return null;
  const m = machineOf(i) ?? i;
  select(m, { fly: true });
  return plant.path(m);
};
state.seek = seek;
/** For tests: the binding editor's state (allowed, open, previewing, draft, output, lastSave…). */
state.authoring = () => editor.snapshot();
state.plant = plant;  // for the browser's devtools
/** The site's registered anchors (protocol 3): [{id, position: [x, y, z] metres, rotation: [x, y, z, w], handles:
 * {platform: value}, updatedMs}], sorted by id. */
state.anchors = () => [...state.siteAnchors.values()].map((a) => ({ ...a, position: [...a.position], rotation: [...a.rotation], handles: { ...a.handles } }));
/** For tests: the WebXR side (modes, anchors API, session, restored anchors, status line). */
state.xr = () => immersive.snapshot();
/** Pins anchor `id` where it is drawn now in an immersive session with persistent WebXR anchors; resolves to the
 * handle to register as its `webxr` handle (rejects where that is not available). */
state.pinAnchor = (id) => immersive.pin(id);
/** For tests: where node `nodeId` is drawn, {position: [x, y, z] metres, rotation: [x, y, z, w]} in the world
 * (null: not known). */
state.worldPose = (nodeId) => {
  const i = plant.indexOf(nodeId);
  const n = i == null ? null : plant.nodes.get(i);
  if (!n) return null;
  const p = new THREE.Vector3(), q = new THREE.Quaternion();
  n.world.decompose(p, q, new THREE.Vector3());
  return { position: p.toArray(), rotation: q.toArray() };
};
state.worldPosition = (nodeId) => state.worldPose(nodeId)?.position ?? null;
/** For tests: the camera, its orbit pivot, and where the plant's centre is on the page (null: behind the camera). */
state.camera = () => {
  const c = plantBounds().getCenter(new THREE.Vector3()).project(camera);
  const r = renderer.domElement.getBoundingClientRect();
  return { position: camera.position.toArray(), target: controls.target.toArray(),
    plantCentre: c.z > 1 ? null : [r.left + (c.x + 1) / 2 * r.width, r.top + (1 - c.y) / 2 * r.height], view: [r.left, r.top, r.width, r.height] };
};
/** For tests: the page point of the top centre of node `nodeId`'s drawn bounds. */
state.screenPoint = (nodeId) => {
  const i = plant.indexOf(nodeId);
  if (i == null) return null;
  const b = plant.bounds(i), p = new THREE.Vector3((b.min.x + b.max.x) / 2, b.min.y * 0.3 + b.max.y * 0.7, (b.min.z + b.max.z) / 2).project(camera);
  const r = renderer.domElement.getBoundingClientRect();
  return [r.left + (p.x + 1) / 2 * r.width, r.top + (1 - p.y) / 2 * r.height];
};
/** For tests: the node drawn at page point (x, y) (null: none). */
state.nodeAt = (x, y) => { const hit = plant.pick(rayAt(x, y)); return hit ? plant.path(hit.index) : null; };
/** For tests: the replica's plant nodes (no presence, selections or notes) as id → [translation, rotation, colour,
 * visible], to compare two viewers' scenes. */
state.sceneDigest = () => {
  const out = {};
  for (const [i, n] of replica.nodes) {
    const path = replica.path(i);
    if (path.includes('~')) continue;
    out[path] = [n.translation, n.rotation, n.color, n.visible];
  }
  return out;
};
/** For tests: drops the connection as a network failure would. */
state.dropConnection = () => { if (ws) ws.close(4001, 'test'); };
/** For tests: the machine a click at page point (x, y) would select (null: none). */
state.machineAt = (x, y) => { const hit = plant.pick(rayAt(x, y)); const m = hit ? machineOf(hit.index) : null; return m == null ? null : plant.path(m); };

// A tab whose session went to another device asks before taking it back.
const handed = sessionStorage.getItem('scenestream.handedOff');
if (handed) {
  const h = JSON.parse(handed);
  sessionToken = '';
  showTakeBack(DEVICE_NAMES[h.to] || 'other device', h.sessionId);
} else {
  state.timeline.connectMs = Math.round(performance.now());
  connect();
}
