// Immersive WebXR for the viewer: its own "Enter VR" / "Enter AR" buttons (three r111's VRButton asks for a fixed
// set of features, so it cannot ask for 'anchors'), and the site's anchors (SPEC §12) resolved by their `webxr`
// handles (persistent anchors of the WebXR Anchors Module: XRSession.restorePersistentAnchor) so that the plant
// stands where the site says in the room. Everything is feature-detected: where the browser has no immersive
// session or no anchors, no button shows, the status says so, and nothing throws.
import * as THREE from '/vendor/three/build/three.module.js';

const MODES = [['immersive-vr', 'VR'], ['immersive-ar', 'AR']];

export class ImmersiveXR {
  /** `renderer`, `scene` (three), `plant` (PlantView: takes the resolved poses), `slot` (where the buttons go),
   * `onChange()` (the status changed), `onError(text)`. */
  constructor({ renderer, scene, plant, slot, onChange = () => {}, onError = () => {} }) {
    Object.assign(this, { renderer, scene, plant, slot, onChange, onError });
    this.modes = null;          // the immersive modes this browser supports: null while asking
    this.session = null;
    this.mode = '';
    this.space = null;          // a reference space of the type three.js uses: poses are in its world
    this.granted = false;       // the session has the 'anchors' feature
    this.handles = new Map();   // registered anchor id → its WebXR persistent handle
    this.restored = new Map();  // anchor id → { handle, anchor (XRAnchor), state: resolving | resolved | failed, tracked, matrix }
    this.rafPending = false;
    this.pins = [];
    this.buttons = [];
    this.saved = null;          // the scene's background and clear alpha while an AR session shows the room
  }

  /** The browser can create anchors (XRFrame.createAnchor) / restore persistent ones. */
  static anchorsApi() { return typeof XRFrame !== 'undefined' && typeof XRFrame.prototype.createAnchor === 'function'; }
  static persistentApi() { return typeof XRSession !== 'undefined' && typeof XRSession.prototype.restorePersistentAnchor === 'function'; }

  /** Asks which immersive modes the browser supports, adds a button for each; resolves to the list. */
  async detect() {
    const modes = [];
    const xr = typeof navigator !== 'undefined' ? navigator.xr : null;
    if (xr && typeof xr.isSessionSupported === 'function') {
      for (const [mode, label] of MODES) {
        try { if (await xr.isSessionSupported(mode)) modes.push({ mode, label }); } catch { /* not this mode */ }
      }
    }
    this.modes = modes;
    for (const m of modes) {
      const b = document.createElement('button');
      b.dataset.mode = m.mode;
      b.title = `Show the plant in ${m.label === 'AR' ? 'the room (AR)' : 'VR'}`;
      b.onclick = () => this.toggle(m.mode);
      this.buttons.push(b);
      this.slot.appendChild(b);
    }
    this.label();
    this.onChange();
    return modes;
  }

  label() {
    for (const b of this.buttons) {
      const m = MODES.find(([mode]) => mode === b.dataset.mode)[1];
      b.textContent = this.session && this.mode === b.dataset.mode ? `Exit ${m}` : `Enter ${m}`;
      b.disabled = !!this.session && this.mode !== b.dataset.mode;
    }
  }

  async toggle(mode) {
    if (this.session) { this.session.end().catch(() => {}); return; }
    const init = { optionalFeatures: ['local-floor', 'bounded-floor'] };
    if (ImmersiveXR.anchorsApi()) init.optionalFeatures.push('anchors');
    let session;
    try { session = await navigator.xr.requestSession(mode, init); } catch (e) { this.onError(`${mode}: ${e.message || e}`); return; }
    this.session = session;
    this.mode = mode;
    this.granted = ImmersiveXR.anchorsApi() && (!session.enabledFeatures || [...session.enabledFeatures].includes('anchors'));
    session.addEventListener('end', () => this.ended(session));
    if (mode === 'immersive-ar') {
      // The room shows through: no background, a transparent clear.
      this.saved = { background: this.scene.background, alpha: this.renderer.getClearAlpha() };
      this.scene.background = null;
      this.renderer.setClearAlpha(0);
    }
    (this.renderer.xr || this.renderer.vr).setSession(session);
    for (const type of ['local-floor', 'local']) {
      try { this.space = await session.requestReferenceSpace(type); break; } catch { this.space = null; }
    }
    this.label();
    this.sync();
    this.onChange();
  }

  ended(session) {
    if (this.session !== session) return;
    this.session = null;
    // three r111 keeps an ended session as presenting until it is told (VRButton did the same).
    (this.renderer.xr || this.renderer.vr).setSession(null);
    this.space = null;
    this.granted = false;
    for (const r of this.restored.values()) r.anchor?.delete?.();
    this.restored.clear();
    for (const p of this.pins.splice(0)) p.reject(new Error('the session ended'));
    this.plant.setXRPoses(new Map());
    if (this.saved) { this.scene.background = this.saved.background; this.renderer.setClearAlpha(this.saved.alpha); this.saved = null; }
    this.label();
    this.onChange();
  }

  /** The site's anchors as the viewer keeps them (id, handles {platform: value}): those with a `webxr` handle are
   * restored in the session (now, or when one starts). */
  setRegistry(anchors) {
    this.handles = new Map();
    for (const a of anchors) if (a.handles.webxr) this.handles.set(a.id, a.handles.webxr);
    this.sync();
    this.onChange();
  }

  /** Restores the anchors whose handles are new; forgets those whose handle went away or changed. */
  sync() {
    for (const [id, r] of [...this.restored]) {
      if (this.handles.get(id) !== r.handle) { r.anchor?.delete?.(); this.restored.delete(id); }
    }
    if (!this.session || !this.granted || !ImmersiveXR.persistentApi()) return;
    const session = this.session;
    for (const [id, handle] of this.handles) {
      if (this.restored.has(id)) continue;
      const r = { handle, anchor: null, state: 'resolving', tracked: false, matrix: null };
      this.restored.set(id, r);
      Promise.resolve().then(() => session.restorePersistentAnchor(handle)).then((anchor) => {
        if (this.restored.get(id) !== r || this.session !== session) { anchor?.delete?.(); return; }
        r.anchor = anchor;
        r.state = 'resolved';
        this.onChange();
      }, (e) => {
        if (this.restored.get(id) !== r) return;
        r.state = 'failed';
        r.reason = e?.name || String(e);
        this.onChange();
      });
    }
    this.onChange();
  }

  /** Call once per drawn frame while presenting: the next XR frame (before three.js draws it: this callback is
   * registered ahead of three's) reads the resolved anchors' poses. */
  tick() {
    if (!this.session || this.rafPending) return;
    const session = this.session;
    this.rafPending = true;
    try {
      session.requestAnimationFrame((t, frame) => {
        this.rafPending = false;
        if (this.session === session) this.frame(frame);
      });
    } catch { this.rafPending = false; }
  }

  frame(frame) {
    const poses = new Map();
    for (const [id, r] of this.restored) {
      if (!r.anchor || !this.space) continue;
      let pose = null;
      try {
        if (!frame.trackedAnchors || frame.trackedAnchors.has(r.anchor)) pose = frame.getPose(r.anchor.anchorSpace, this.space);
      } catch { pose = null; }
      if (pose) r.matrix = (r.matrix || new THREE.Matrix4()).fromArray(pose.transform.matrix);
      if (!!pose !== r.tracked) { r.tracked = !!pose; this.onChange(); }
      // Tracking lost for a moment: the plant stays where the anchor was last seen.
      if (r.matrix) poses.set(id, r.matrix);
    }
    this.plant.setXRPoses(poses);
    for (const p of this.pins.splice(0)) {
      try {
        const pos = new THREE.Vector3(), q = new THREE.Quaternion();
        this.plant.anchorMatrix(p.id).decompose(pos, q, new THREE.Vector3());
        // eslint-disable-next-line no-undef
        const pose = new XRRigidTransform({ x: pos.x, y: pos.y, z: pos.z }, { x: q.x, y: q.y, z: q.z, w: q.w });
        frame.createAnchor(pose, this.space).then((a) => a.requestPersistentHandle()).then(p.resolve, p.reject);
      } catch (e) { p.reject(e); }
    }
  }

  /** In a session with persistent anchors: a new anchor where anchor `id` is drawn now; resolves to its persistent
   * handle (register it as the anchor's `webxr` handle: PUT /api/anchors/ID). */
  pin(id) {
    const ok = this.session && this.space && this.granted && typeof XRAnchor !== 'undefined'
      && typeof XRAnchor.prototype.requestPersistentHandle === 'function';
    if (!ok) return Promise.reject(new Error('persistent WebXR anchors are not available'));
    return new Promise((resolve, reject) => this.pins.push({ id, resolve, reject }));
  }

  /** One line for people: what WebXR does with the anchors here. */
  status() {
    if (this.modes === null) return 'checking WebXR…';
    if (!this.modes.length || !ImmersiveXR.anchorsApi()) return 'WebXR anchors not available in this browser';
    const enter = this.modes.map((m) => m.label).join('/');
    if (!this.session) return this.handles.size ? `WebXR anchors resolved on entering ${enter}` : 'no anchor has a WebXR handle';
    if (!this.granted) return 'WebXR anchors not granted for this session';
    if (!ImmersiveXR.persistentApi()) return 'persistent WebXR anchors not available in this browser';
    if (!this.handles.size) return 'no anchor has a WebXR handle';
    const parts = [];
    for (const [id, r] of [...this.restored].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (r.state === 'resolving') parts.push(`resolving ${id}…`);
      else if (r.state === 'failed') parts.push(`${id} not found here`);
      else parts.push(r.tracked ? `resolved ${id}` : `${id} not tracked now`);
    }
    return parts.join(' · ');
  }

  /** For tests: what the browser has and what is resolved. */
  snapshot() {
    return {
      modes: this.modes ? this.modes.map((m) => m.mode) : null, anchorsApi: ImmersiveXR.anchorsApi(), persistentApi: ImmersiveXR.persistentApi(),
      presenting: !!this.session, mode: this.mode, granted: this.granted, handles: Object.fromEntries(this.handles),
      rendererPresenting: !!(this.renderer.xr || this.renderer.vr)?.isPresenting?.(),
      restored: Object.fromEntries([...this.restored].map(([id, r]) => [id, r.state === 'resolved' && !r.tracked ? 'untracked' : r.state])),
      status: this.status(),
    };
  }
}
