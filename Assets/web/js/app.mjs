// The SceneStream web viewer: streams the scene over WebSocket (scenestream.v1), draws it with three.js from
// Debian's libjs-three (served by the server, no CDN), and offers session controls (handoff, follow, annotate).
import * as THREE from '/vendor/three/build/three.module.js';
import { OrbitControls } from '/vendor/three/examples/jsm/controls/OrbitControls.js';
import { GLTFLoader } from '/vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { CSS2DRenderer, CSS2DObject } from '/vendor/three/examples/jsm/renderers/CSS2DRenderer.js';
import { VRButton } from '/vendor/three/examples/jsm/webxr/VRButton.js';
import { decodeServer, encode, Replica, quaternion, smallestThree, DEVICE } from './wire.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEVICE_NAMES = ['device', 'headset', 'desktop', 'phone'];
const ROLE_NAMES = ['viewer', 'participant', 'host'];

// Identity: ?user=NAME (remembered in this browser), ?role=viewer|participant|host.
const user = params.get('user') || localStorage.getItem('scenestream.user') || `user-${Math.random().toString(36).slice(2, 6)}`;
localStorage.setItem('scenestream.user', user);
const token = `demo:${user}${params.get('role') ? `:${params.get('role')}` : ''}`;
const device = params.get('device') ? DEVICE[params.get('device')] ?? DEVICE.desktop : (/Mobi|Android/i.test(navigator.userAgent) ? DEVICE.mobile : DEVICE.desktop);
$('user').textContent = user;
$('device').textContent = DEVICE_NAMES[device];

// State visible to people (the panel) and to tests (window.sceneStream).
const state = window.sceneStream = {
  status: 'connecting', version: null, nodes: 0, framesApplied: 0, keyframes: 0, drawn: 0, sessionId: '', user,
  members: [], offer: null, handedOff: null, claimed: null, errors: [], alerts: new Map(), following: '', selection: [],
};

// ---------------------------------------------------------------------------------------------------- three.js
const view = $('view');
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
// three r111 (Debian's libjs-three) calls its WebXR manager `vr`; later releases call it `xr`.
(renderer.xr || renderer.vr).enabled = true;
view.appendChild(renderer.domElement);
const labels = new CSS2DRenderer();
labels.domElement.style.position = 'absolute';
labels.domElement.style.top = '0';
labels.domElement.style.pointerEvents = 'none';
view.appendChild(labels.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x1d2127);
scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 1.0));
const sun = new THREE.DirectionalLight(0xffffff, 0.8);
sun.position.set(50, 80, 30);
scene.add(sun);
const camera = new THREE.PerspectiveCamera(55, 1, 0.1, 2000);
camera.position.set(-20, 30, -20);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(20, 0, 20);
controls.update();
document.body.appendChild(VRButton.createButton(renderer));

function resize() {
  const w = view.clientWidth, h = view.clientHeight;
  renderer.setSize(w, h);
  labels.setSize(w, h);
  camera.aspect = w / Math.max(1, h);
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();

// Anchors: a desktop has no spatial anchors, so it lays them side by side; a headset resolves them itself.
const anchors = new Map();
function anchorGroup(name) {
  if (!anchors.has(name)) {
    const g = new THREE.Group();
    g.position.set(anchors.size * 160, 0, 0);
    g.name = `anchor:${name}`;
    scene.add(g);
    anchors.set(name, g);
  }
  return anchors.get(name);
}

const loader = new GLTFLoader();
const assetCache = new Map();
function loadAsset(path) {
  if (!assetCache.has(path)) {
    assetCache.set(path, new Promise((resolve) => loader.load(`/assets/${path}`, (g) => resolve(g.scene), undefined, () => resolve(null))));
  }
  return assetCache.get(path);
}

const replica = new Replica();
const objects = new Map(); // node index → { group, model, asset, color, label }

function colorModel(model, rgba) {
  model.traverse((o) => {
    if (!o.isMesh) return;
    if (!o.userData.ownMaterial) { o.material = o.material.clone(); o.userData.ownMaterial = true; o.userData.baseColor = o.material.color.clone(); }
    if (rgba) {
      o.material.color.setRGB(((rgba >>> 24) & 255) / 255, ((rgba >>> 16) & 255) / 255, ((rgba >>> 8) & 255) / 255);
      o.material.opacity = (rgba & 255) / 255;
      o.material.transparent = (rgba & 255) < 255;
    } else o.material.color.copy(o.userData.baseColor);
  });
}

function applyNode(i, n) {
  let o = objects.get(i);
  if (!o) {
    o = { group: new THREE.Group(), model: null, asset: '', color: 0, label: null };
    o.group.userData.index = i;
    objects.set(i, o);
    const parent = n.parent == null ? anchorGroup(n.anchor || 'default') : objects.get(n.parent)?.group;
    (parent || anchorGroup('default')).add(o.group);
  }
  const u = replica.unitsPerMetre;
  o.group.position.set(n.translation[0] / u, n.translation[1] / u, n.translation[2] / u);
  const q = quaternion(n.rotation, replica.rotationBits);
  o.group.quaternion.set(q[0], q[1], q[2], q[3]);
  o.group.scale.set(n.scale[0] / 1000, n.scale[1] / 1000, n.scale[2] / 1000);
  o.group.visible = n.visible;
  if (n.asset !== o.asset) {
    o.asset = n.asset;
    if (o.model) { o.group.remove(o.model); o.model = null; }
    if (n.asset) {
      loadAsset(n.asset).then((tpl) => {
        if (!tpl || objects.get(i) !== o || o.asset !== n.asset) return;
        o.model = tpl.clone();
        o.model.userData.index = i;
        o.group.add(o.model);
        if (o.color) colorModel(o.model, o.color);
        state.drawn++;
      });
    }
  }
  if (n.color !== o.color) {
    o.color = n.color;
    if (o.model) colorModel(o.model, n.color);
  }
  if (n.label) {
    if (!o.label) {
      const div = document.createElement('div');
      div.className = 'label';
      o.label = new CSS2DObject(div);
      o.label.position.set(0, 0.3, 0);
      o.group.add(o.label);
    }
    o.label.element.textContent = n.label;
  } else if (o.label) {
    o.group.remove(o.label);
    o.label = null;
  }
}

function removeNode(i) {
  const o = objects.get(i);
  if (!o) return;
  o.group.parent?.remove(o.group);
  objects.delete(i);
}

function applyChange(change) {
  if (change.keyframe) {
    for (const i of [...objects.keys()]) removeNode(i);
  }
  for (const i of change.removed) removeNode(i);
  const touched = [...change.entered, ...change.updated].sort((a, b) => a - b);
  for (const i of touched) {
    const n = replica.nodes.get(i);
    if (n) applyNode(i, n);
  }
}

// ------------------------------------------------------------------------------------------------ connection
let ws = null;
let pending = Promise.resolve();
let sessionToken = sessionStorage.getItem('scenestream.token') || '';
let sceneId = '';
let requestId = 1;
let protocolVersion = 1;  // what the welcome chose: 2 has range-coded frames (SPEC §11)
let awaitingKeyframe = false;  // a frame did not apply; deltas are dropped until the keyframe asked for
let bytesThisSecond = 0, framesThisSecond = 0;
let detached = false;
let retry = 0;

function send(bytes) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes); }
function toast(text) { $('toast').textContent = text; state.errors.push(text); }
function banner(text) { const b = $('banner'); b.textContent = text; b.hidden = false; setTimeout(() => { b.hidden = true; }, 6000); }

function connect() {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stream`;
  awaitingKeyframe = false;  // a resume starts from the replica as it is
  ws = new WebSocket(url, 'scenestream.v1');
  ws.binaryType = 'arraybuffer';
  state.status = 'connecting';
  ws.onopen = () => {
    retry = 0;
    state.status = 'connected';
    $('conn').textContent = 'connected';
    protocolVersion = 1;  // until this connection's welcome says otherwise
    send(encode.hello({ device, name: 'web-viewer', token, resumeToken: sessionToken, resumeVersion: sessionToken && replica.version ? replica.version : 0, maxVersion: 2 }));
  };
  ws.onmessage = (ev) => {
    const bytes = new Uint8Array(ev.data);
    bytesThisSecond += bytes.length;
    // Decoding is asynchronous (inflate); keep messages in order.
    pending = pending.then(() => decodeServer(bytes, protocolVersion)).then(handle).catch((e) => {
      toast(`bad message: ${e.message}`);
      ws.close(1008, 'bad frame');
    });
  };
  ws.onclose = (ev) => {
    state.status = 'disconnected';
    $('conn').textContent = detached ? 'continued on another device' : `disconnected (${ev.code})`;
    if (!detached) setTimeout(connect, Math.min(10000, 500 * 2 ** retry++));
  };
}

function handle(m) {
  switch (m.type) {
    case 'welcome': {
      protocolVersion = m.version;
      state.protocolVersion = m.version;
      state.sessionId = m.sessionId;
      sessionToken = m.sessionToken;
      sessionStorage.setItem('scenestream.token', sessionToken);
      sceneId = m.scenes[0] || '';
      $('scene-name').textContent = sceneId;
      const code = params.get('claim');
      if (code && !state.claimed) send(encode.handoffClaim(requestId++, code));
      else send(encode.subscribe({ sceneId, rateHz: 30 }));
      break;
    }
    case 'keyframe': case 'delta': {
      let change;
      // After a frame that did not apply, deltas already on their way do not apply either: wait for the keyframe.
      if (awaitingKeyframe && m.type !== 'keyframe') return;
      try { change = replica.apply(m); } catch (e) {
        toast(`frame refused: ${e.message}; asking for a keyframe`);
        awaitingKeyframe = true;
        send(encode.requestKeyframe(requestId++));
        return;
      }
      awaitingKeyframe = false;
      applyChange(change);
      state.framesApplied++;
      framesThisSecond++;
      if (change.keyframe) state.keyframes++;
      state.version = replica.version;
      state.nodes = replica.nodes.size;
      $('version').textContent = String(state.version);
      $('nodes').textContent = String(state.nodes);
      send(encode.ack(m.version));
      break;
    }
    case 'alerts':
      for (const a of m.alerts) { if (a.state === 0) state.alerts.set(a.id, a); else state.alerts.delete(a.id); }
      renderAlerts();
      break;
    case 'roomMembers': {
      // Only the users named changed: replace their entries, keep everyone else's.
      const changed = new Set(m.changes.map((c) => c.userId));
      state.members = state.members.filter((x) => !changed.has(x.userId)).concat(...m.changes.map((c) => c.members));
      $('room').textContent = `${state.members.length} here`;
      renderMembers({ members: state.members, followUserId: state.following });
      break;
    }
    case 'sessionState':
      state.members = m.members;
      state.sessionId = m.sessionId;
      state.following = m.followUserId;
      state.selection = m.selection;
      state.playback = m.playback;
      $('playback-state').textContent = m.playback.mode === 0 ? 'live'
        : `${m.playback.mode === 2 ? 'playing' : 'paused'} at ${new Date(m.playback.cursorMs).toLocaleTimeString()} ×${m.playback.speedMilli / 1000}`;
      $('room').textContent = `${m.members.length} here`;
      renderMembers(m);
      if (m.viewpoint && !state.viewpointApplied) { state.viewpointApplied = true; applyViewpoint(m.viewpoint); }
      break;
    case 'handoff':
      if (m.kind === 'offer') showOffer(m);
      if (m.kind === 'handedOff') {
        state.handedOff = m;
        detached = m.detached;
        banner(`This session continues on a ${DEVICE_NAMES[m.to]}`);
      }
      if (m.kind === 'claimed') {
        state.claimed = m;
        sessionToken = m.sessionToken;
        sessionStorage.setItem('scenestream.token', sessionToken);
        state.viewpointApplied = false;
        banner(`Took over the session from a ${DEVICE_NAMES[m.from]}`);
        history.replaceState(null, '', location.pathname);
      }
      if (m.kind === 'sessions') renderSessions(m.sessions);
      break;
    case 'error':
      toast(`error ${m.code}: ${m.message}`);
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------------------------------------ panel
function renderAlerts() {
  const list = $('alerts');
  list.innerHTML = '';
  for (const a of [...state.alerts.values()].sort((x, y) => y.severity - x.severity)) {
    const li = document.createElement('li');
    li.className = `sev${a.severity}`;
    li.textContent = a.message;
    list.appendChild(li);
  }
  $('alert-badge').textContent = String(state.alerts.size);
}

function renderMembers(m) {
  const list = $('members');
  list.innerHTML = '';
  for (const mem of m.members) {
    const li = document.createElement('li');
    const dot = `#${(mem.color >>> 8).toString(16).padStart(6, '0')}`;
    li.innerHTML = `<span style="color:${dot}">●</span> ${mem.displayName} <small>${DEVICE_NAMES[mem.device]} · ${ROLE_NAMES[mem.role]}</small> `;
    if (mem.userId !== user) {
      const b = document.createElement('button');
      b.textContent = m.followUserId === mem.userId ? 'unfollow' : 'follow';
      b.onclick = () => send(encode.follow(m.followUserId === mem.userId ? '' : mem.userId));
      li.appendChild(b);
    }
    list.appendChild(li);
  }
}

function showOffer(m) {
  state.offer = m;
  $('offer-box').hidden = false;
  $('offer-code').textContent = m.code;
  const url = `${location.origin}/?claim=${encodeURIComponent(m.code)}&user=${encodeURIComponent(user)}`;
  $('offer-url').textContent = url;
  $('offer-url').href = url;
  $('offer-expiry').textContent = `valid until ${new Date(m.expiresMs).toLocaleTimeString()}`;
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
    b.onclick = () => send(encode.handoffClaim(requestId++, '', s.sessionId));
    li.appendChild(b);
    ul.appendChild(li);
  }
}

$('offer').onclick = () => send(encode.handoffOffer(requestId++, false));
$('claim').onclick = () => { const c = $('claim-code').value.trim(); if (c) send(encode.handoffClaim(requestId++, c)); };
$('list-sessions').onclick = () => send(encode.listSessions(requestId++));
$('annotate').onclick = () => {
  const text = $('note-text').value.trim();
  if (!text || state.selection.length === 0) { toast('select an object and type a note'); return; }
  send(encode.annotate({ requestId: requestId++, node: state.selection[0], offset: [0, 500, 0], text }));
  $('note-text').value = '';
};
$('scrub').onchange = () => send(encode.playback(0, Date.now() + Number($('scrub').value) * 1000));
$('play').onclick = () => send(encode.playback(1, state.playback && state.playback.mode !== 0 ? 0 : Date.now() + Number($('scrub').value) * 1000));
$('pause').onclick = () => send(encode.playback(2));
$('live').onclick = () => { $('scrub').value = 0; send(encode.playback(3)); };

// Picking: click selects the node under the pointer.
const raycaster = new THREE.Raycaster();
renderer.domElement.addEventListener('click', (ev) => {
  const r = renderer.domElement.getBoundingClientRect();
  raycaster.setFromCamera(new THREE.Vector2(((ev.clientX - r.left) / r.width) * 2 - 1, -((ev.clientY - r.top) / r.height) * 2 + 1), camera);
  const hit = raycaster.intersectObjects(scene.children, true).find((h) => h.object.visible);
  let o = hit?.object;
  while (o && o.userData.index === undefined) o = o.parent;
  if (o) {
    const i = o.userData.index;
    send(encode.select([i]));
    state.selection = [i];
    $('selection').textContent = replica.path(i);
  }
});

// ------------------------------------------------------------------------------------------ presence + follow
function anchorName() { return anchors.keys().next().value || ''; }

function sendPresence() {
  const a = anchorName();
  if (!a || !sceneId || !state.version) return;
  const origin = anchors.get(a).position;
  const p = camera.position.clone().sub(origin);
  const q = camera.quaternion;
  send(encode.presence({ head: { anchor: a, position: [p.x, p.y, p.z].map((v) => Math.round(v * 1000)), rotation: smallestThree([q.x, q.y, q.z, q.w], 12) } }));
}
setInterval(sendPresence, 100);

function applyViewpoint(v) {
  const g = anchors.get(v.anchor) || anchorGroup(v.anchor);
  const q = quaternion(v.rotation, 12);
  camera.position.set(v.position[0] / 1000, v.position[1] / 1000, v.position[2] / 1000).add(g.position);
  camera.quaternion.set(q[0], q[1], q[2], q[3]);
  const ahead = new THREE.Vector3(0, 0, -10).applyQuaternion(camera.quaternion).add(camera.position);
  controls.target.copy(ahead);
  controls.update();
}

function followTick() {
  if (!state.following) return;
  for (const [name, g] of anchors) {
    for (const [i, o] of objects) {
      const n = replica.nodes.get(i);
      if (n && n.name === 'head' && replica.path(i) === `~presence.${name}/${state.following}/head`) {
        o.group.getWorldPosition(camera.position);
        o.group.getWorldQuaternion(camera.quaternion);
        return;
      }
    }
    void g;
  }
}

setInterval(() => {
  $('rate').textContent = `${framesThisSecond} frames/s`;
  $('bw').textContent = `${(bytesThisSecond / 1000).toFixed(1)} kB/s`;
  $('version').textContent = String(state.version ?? '–');
  $('nodes').textContent = String(state.nodes);
  state.framesPerSecond = framesThisSecond;
  framesThisSecond = 0;
  bytesThisSecond = 0;
}, 1000);

renderer.setAnimationLoop(() => {
  if (state.following) followTick(); else controls.update();
  renderer.render(scene, camera);
  labels.render(scene, camera);
});

connect();
