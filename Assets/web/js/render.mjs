// Draws the replica with three.js r111 (Debian's libjs-three): one InstancedMesh per part of each asset, so the
// 10,000-node reference plant is ~20 draw calls; node transforms are kept as matrices in a flat table, not as
// three.js objects; labels are a small pool of DOM elements placed each frame without overlaps.
import * as THREE from '/vendor/three/build/three.module.js';
import { GLTFLoader } from '/vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { quaternion } from './wire.mjs';

const RING = 'models/selection-ring.gltf';
const AVATAR = /^models\/avatar-/;
const ZERO = new THREE.Matrix4().makeScale(0, 0, 0);
const tmpSphere = new THREE.Sphere();
const tmpM = new THREE.Matrix4(), tmpV = new THREE.Vector3(), tmpQ = new THREE.Quaternion(), tmpS = new THREE.Vector3();
/** `out` = the inverse of `m` (three r111's getInverse, invert in later releases). */
export const inverseOf = (m, out = new THREE.Matrix4()) => (out.getInverse ? out.getInverse(m) : out.copy(m).invert());

/** A per-instance colour (three r111 has no instanceColor of its own): it replaces the material's colour, except
 * that a negative red keeps the material's own (each mesh of a model keeps its colour unless the node has one). */
function instancedColours(material) {
  const m = material.clone();
  m.onBeforeCompile = (shader) => {
    shader.vertexShader = `attribute vec3 instanceColor;\nvarying vec3 vInstanceColor;\n${shader.vertexShader}`
      .replace('#include <begin_vertex>', '#include <begin_vertex>\n\tvInstanceColor = instanceColor;');
    shader.fragmentShader = `varying vec3 vInstanceColor;\n${shader.fragmentShader}`
      .replace('#include <color_fragment>', '#include <color_fragment>\n\tif (vInstanceColor.r >= 0.0) diffuseColor.rgb = vInstanceColor;');
  };
  return m;
}

const AXES = [new THREE.Vector3(1, 0, 0), new THREE.Vector3(0, 1, 0), new THREE.Vector3(0, 0, 1)];
/** A local override's transform (PlantView.override) applied to a node's translation, rotation and scale. */
function overrideTransform(o, t, q, s) {
  if (o.translation) t.setComponent(o.translation[0], o.translation[1]);
  if (o.rotation) q.setFromAxisAngle(AXES[o.rotation[0]], o.rotation[1]);
  if (o.scale) { if (o.scale[0] < 0) s.setScalar(o.scale[1]); else s.setComponent(o.scale[0], o.scale[1]); }
  if (o.pose) {
    const p = o.pose;
    if (p.x != null) t.x = p.x;
    if (p.y != null) t.y = p.y;
    if (p.z != null) t.z = p.z;
    if (p.yaw != null) q.setFromAxisAngle(AXES[1], (p.yaw * Math.PI) / 180);
  }
}

/** An InstancedMesh drawing up to `cap` instances of `geometry`, with its own per-instance colours. */
function instanced(geometry, material, cap, batch) {
  const g = geometry.clone();
  const colours = new THREE.InstancedBufferAttribute(new Float32Array(cap * 3), 3);
  colours.setUsage?.(THREE.DynamicDrawUsage);
  g.setAttribute('instanceColor', colours);
  const m = new THREE.InstancedMesh(g, material, cap);
  m.instanceMatrix.setUsage?.(THREE.DynamicDrawUsage);
  m.count = 0;
  m.frustumCulled = false;  // instances spread over the plant: culled one by one in ``AssetBatch.cull``
  m.userData.batch = batch;
  m.userData.owners = [];
  return m;
}

/** Every instance of one asset. Each node has a slot; its matrices (one per mesh of the glTF) and colour live in
 * CPU arrays, and ``cull`` copies the instances inside the view into the InstancedMeshes — far ones that would be a
 * few pixels big into a box of the same size (12 triangles), so software GL is not drowned in triangles nobody
 * can see. */
class AssetBatch {
  constructor(path, scene) {
    this.path = path; this.scene = scene; this.parts = null; this.capacity = 16; this.count = 0;
    this.owner = []; this.radius = 0.5; this.dirty = false;
    this.cpu = []; this.node = new Float32Array(16 * 16); this.rgb = new Float32Array(16 * 3); this.shown = new Uint8Array(16);
    this.full = []; this.proxy = []; this.gpuCapacity = 0;
  }

  get meshes() { return [...this.full, ...this.proxy]; }

  /** `template` is the glTF scene: its meshes become parts with their matrices relative to the asset root. */
  setTemplate(template) {
    this.parts = [];
    if (!template) return;
    template.updateMatrixWorld(true);
    const box = new THREE.Box3();
    template.traverse((o) => {
      if (!o.isMesh) return;
      const material = instancedColours(o.material);
      o.geometry.computeBoundingBox();
      box.union(o.geometry.boundingBox.clone().applyMatrix4(o.matrixWorld));
      const triangles = (o.geometry.index ? o.geometry.index.count : o.geometry.attributes.position.count) / 3;
      let proxy = null;
      if (triangles > 12) {
        const b = o.geometry.boundingBox, size = b.getSize(new THREE.Vector3()), c = b.getCenter(new THREE.Vector3());
        proxy = new THREE.BoxBufferGeometry(size.x, size.y, size.z).translate(c.x, c.y, c.z);
      }
      this.parts.push({ geometry: o.geometry, material, matrix: o.matrixWorld.clone(), proxy });
    });
    const s = new THREE.Sphere();
    box.getBoundingSphere(s);
    this.radius = s.radius || 0.5;
    this.centre = s.center.clone();
    this.cpu = this.parts.map(() => new Float32Array(this.capacity * 16));
    this.dirty = true;
  }

  grow(want) {
    let cap = this.capacity;
    while (cap < want) cap *= 2;
    if (cap === this.capacity) return;
    const widen = (a, n) => { const b = new a.constructor(cap * n); b.set(a.subarray(0, this.count * n)); return b; };
    this.cpu = this.cpu.map((a) => widen(a, 16));
    this.node = widen(this.node, 16);
    this.rgb = widen(this.rgb, 3);
    this.shown = widen(this.shown, 1);
    this.capacity = cap;
  }

  /** The GPU side holds as many instances as the CPU side. */
  meshesFit() {
    if (!this.parts || (this.gpuCapacity >= this.capacity && this.full.length === this.parts.length)) return;
    for (const m of this.meshes) { this.scene.remove(m); m.geometry.dispose(); }
    this.full = this.parts.map((p) => instanced(p.geometry, p.material, this.capacity, this));
    // Boxes only for assets whose every mesh has more triangles than a box.
    this.proxy = this.parts.every((p) => p.proxy) ? this.parts.map((p) => instanced(p.proxy, p.material, this.capacity, this)) : [];
    for (const m of this.meshes) this.scene.add(m);
    this.gpuCapacity = this.capacity;
  }

  add(node) {
    if (this.count >= this.capacity) this.grow(this.count + 1);
    const slot = this.count++;
    this.owner[slot] = node;
    this.shown[slot] = 0;
    node.slot = slot;
    this.dirty = true;
    return slot;
  }

  /** Frees `node`'s slot: the last instance moves into it. */
  remove(node) {
    if (node.slot < 0) return;
    const slot = node.slot, last = --this.count;
    if (slot !== last) {
      const moved = this.owner[last];
      this.owner[slot] = moved;
      moved.slot = slot;
      for (const a of [...this.cpu, this.node]) a.copyWithin(slot * 16, last * 16, last * 16 + 16);
      this.rgb.copyWithin(slot * 3, last * 3, last * 3 + 3);
      this.shown[slot] = this.shown[last];
    }
    this.owner.length = this.count;
    node.slot = -1;
    this.dirty = true;
  }

  write(node, world, shown) {
    if (node.slot < 0 || !this.parts) return;
    const slot = node.slot;
    this.shown[slot] = shown ? 1 : 0;
    world.toArray(this.node, slot * 16);
    for (let k = 0; k < this.parts.length; k++) tmpM.multiplyMatrices(world, this.parts[k].matrix).toArray(this.cpu[k], slot * 16);
    const c = node.color, o = slot * 3, a = this.rgb;
    if (c) { a[o] = ((c >>> 24) & 255) / 255; a[o + 1] = ((c >>> 16) & 255) / 255; a[o + 2] = ((c >>> 8) & 255) / 255; }
    else { a[o] = -1; a[o + 1] = -1; a[o + 2] = -1; }
    this.dirty = true;
  }

  /** Copies the shown instances inside `frustum` into the meshes; those under `minPixels` on screen go to the
   * boxes. `pixelsPerUnit`: screen pixels of one metre at one metre's distance. */
  cull(frustum, eye, pixelsPerUnit, minPixels) {
    this.meshesFit();
    if (!this.parts || !this.parts.length) return;
    const m0 = this.node, planes = frustum ? frustum.planes : null;
    const fullOwners = this.full[0].userData.owners, proxyOwners = this.proxy[0]?.userData.owners;
    let nf = 0, np = 0;
    fullOwners.length = 0;
    if (proxyOwners) proxyOwners.length = 0;
    const hasProxy = this.proxy.length === this.parts.length;
    const reach = this.radius + this.centre.length(), parts = this.parts.length, rgb = this.rgb;
    // Without a camera to judge by (VR: each eye has its own), everything shown is drawn in full.
    const judge = planes !== null && pixelsPerUnit > 0;
    const limit = judge ? minPixels / pixelsPerUnit : 0, drop = judge ? PlantView.dropPixels / pixelsPerUnit : 0;
    const ex = eye.x, ey = eye.y, ez = eye.z;
    // Instance `s` (matrix offset `o`) becomes instance `n` of `meshes` (one per part): its matrix and colour.
    const place = (meshes, s, o, n) => {
      for (let k = 0; k < parts; k++) {
        const from = this.cpu[k], to = meshes[k].instanceMatrix.array, d = n * 16;
        for (let e = 0; e < 16; e++) to[d + e] = from[o + e];
        const t = meshes[k].geometry.attributes.instanceColor.array;
        t[n * 3] = rgb[s * 3]; t[n * 3 + 1] = rgb[s * 3 + 1]; t[n * 3 + 2] = rgb[s * 3 + 2];
      }
    };
    for (let s = 0; s < this.count; s++) {
      if (!this.shown[s]) continue;
      const o = s * 16;
      // Bounding sphere: the asset's (around its origin, reaching its farthest point), moved and scaled with the node.
      const a = m0[o] * m0[o] + m0[o + 1] * m0[o + 1] + m0[o + 2] * m0[o + 2];
      const b = m0[o + 4] * m0[o + 4] + m0[o + 5] * m0[o + 5] + m0[o + 6] * m0[o + 6];
      const c = m0[o + 8] * m0[o + 8] + m0[o + 9] * m0[o + 9] + m0[o + 10] * m0[o + 10];
      const scale2 = a > b ? (a > c ? a : c) : (b > c ? b : c);
      if (scale2 === 0) continue;
      const r = reach * Math.sqrt(scale2), x = m0[o + 12], y = m0[o + 13], z = m0[o + 14];
      let inside = true;
      for (let p = 0; judge && p < 6; p++) {
        const pl = planes[p];
        if (pl.normal.x * x + pl.normal.y * y + pl.normal.z * z + pl.constant < -r) { inside = false; break; }
      }
      if (!inside) continue;
      // Far: the sphere would be fewer than `minPixels` across (2r / distance < minPixels / pixelsPerUnit); under
      // `PlantView.dropPixels` it is not drawn at all (smaller than a pixel or two).
      const dx = x - ex, dy = y - ey, dz = z - ez, d2 = dx * dx + dy * dy + dz * dz;
      if (judge && 4 * r * r < drop * drop * d2) continue;
      if (judge && hasProxy && 4 * r * r < limit * limit * d2) {
        place(this.proxy, s, o, np);
        proxyOwners.push(this.owner[s]);
        np++;
        continue;
      }
      place(this.full, s, o, nf);
      fullOwners.push(this.owner[s]);
      nf++;
    }
    const publish = (m, n, owners) => {
      m.count = n;
      m.userData.owners = owners;
      if (n === 0) return;
      // Only the used part of each buffer goes to the GPU.
      m.instanceMatrix.updateRange.offset = 0;
      m.instanceMatrix.updateRange.count = n * 16;
      m.instanceMatrix.needsUpdate = true;
      const col = m.geometry.attributes.instanceColor;
      col.updateRange.offset = 0;
      col.updateRange.count = n * 3;
      col.needsUpdate = true;
    };
    for (const m of this.full) publish(m, nf, fullOwners);
    for (const m of this.proxy) publish(m, np, proxyOwners);
    this.dirty = false;
  }
}

/** The scene as drawn: a table of nodes (index → matrices, asset slot, label) and the batches. */
export class PlantView {
  constructor(scene) {
    this.scene = scene;
    this.nodes = new Map();
    this.batches = new Map();
    this.loader = new GLTFLoader();
    this.anchors = new Map();   // anchor name → offset (a desktop lays unregistered anchors side by side)
    this.sitePoses = new Map(); // anchor name → Matrix4: where the site registered it (SPEC §12), site frame = world
    this.xrPoses = new Map();   // anchor name → Matrix4: a WebXR anchor resolved in the session's reference space
    this.xrPrimary = '';        // the resolved anchor that places the other registered ones (see anchorMatrix)
    this.frames = new Map();    // anchor name → Matrix4 (anchor frame → world), cached until poses change
    this.hiddenLayers = new Set();
    this.dirty = new Set();
    this.labelled = new Set();
    this.byPath = null;          // node id → index, rebuilt after structural changes
    this.version = 0;            // bumped on every structural change (the tree UI rebuilds then)
    this.layers = new Map();     // layer → node count
    this.orphans = new Map();    // parent index → children that came first
    this.frustum = new THREE.Frustum();
    this.lastView = '';
    this.overrides = new Map();  // index → values shown instead of the stream's (a binding's preview; see override)
  }

  anchorOffset(name) {
    if (!this.anchors.has(name)) this.anchors.set(name, new THREE.Vector3(this.anchors.size * 160, 0, 0));
    return this.anchors.get(name);
  }

  /** Where anchor `name`'s frame is in the drawn world (a matrix: anchor frame → world; do not change it). A WebXR
   * anchor resolved in an immersive session: its tracked pose; another registered anchor while one is resolved:
   * placed from that one through the site's poses (resolved × site(resolved)⁻¹ × site(name)); a registered anchor:
   * its site pose (the site's frame is the world); an anchor nobody registered: side by side as before. */
  anchorMatrix(name) {
    let m = this.frames.get(name);
    if (m) return m;
    m = new THREE.Matrix4();
    const xr = this.xrPoses.get(name), site = this.sitePoses.get(name);
    if (xr) m.copy(xr);
    else if (site && this.xrPrimary) {
      const p = this.xrPrimary;
      inverseOf(this.sitePoses.get(p), m).premultiply(this.xrPoses.get(p)).multiply(site);
    } else if (site) m.copy(site);
    else m.makeTranslation(...this.anchorOffset(name).toArray());
    this.frames.set(name, m);
    return m;
  }

  /** The site's registered anchors: `poses` maps anchor name → { position: [x, y, z] metres, rotation: [x, y, z, w]
   * }, the whole set (it replaces the previous one). Roots are placed again at the next flush. */
  setSitePoses(poses) {
    const next = new Map();
    for (const [name, p] of poses) {
      const q = new THREE.Quaternion(...p.rotation).normalize();
      next.set(name, new THREE.Matrix4().compose(new THREE.Vector3(...p.position), q, new THREE.Vector3(1, 1, 1)));
    }
    // The same poses again (every subscribe sends them): nothing moves, nothing is recomputed.
    if (next.size === this.sitePoses.size && [...next].every(([name, m]) => this.sitePoses.get(name)?.equals(m))) return;
    this.sitePoses = next;
    for (const name of [...this.xrPoses.keys()]) if (!this.sitePoses.has(name)) this.xrPoses.delete(name);
    this.pickPrimary();
    this.framesChanged();
  }

  /** The anchors resolved by WebXR this frame (anchor name → Matrix4 in the reference space; only registered ones
   * count). Roots move only when a pose moved by more than ~0.1 mm or 0.1 mrad (tracking refines anchors now and
   * then; a steady one costs nothing). Returns whether anything moved. */
  setXRPoses(poses) {
    let changed = false;
    const keep = new Map();
    for (const [name, m] of poses) if (this.sitePoses.has(name)) keep.set(name, m);
    if (keep.size !== this.xrPoses.size) changed = true;
    for (const [name, m] of keep) {
      const old = this.xrPoses.get(name);
      if (!old) { changed = true; break; }
      for (let k = 0; k < 16 && !changed; k++) if (Math.abs(old.elements[k] - m.elements[k]) > 1e-4) changed = true;
      if (changed) break;
    }
    if (!changed) return false;
    this.xrPoses = new Map([...keep].map(([name, m]) => [name, m.clone()]));
    this.pickPrimary();
    this.framesChanged();
    return true;
  }

  pickPrimary() { this.xrPrimary = [...this.xrPoses.keys()].sort()[0] || ''; }

  /** Anchor frames changed: every root (and so everything under it) is placed again at the next flush. */
  framesChanged() {
    this.frames.clear();
    for (const [i, n] of this.nodes) if (n.parent == null) this.dirty.add(i);
  }

  batch(path) {
    let b = this.batches.get(path);
    if (!b) {
      b = new AssetBatch(path, this.scene);
      this.batches.set(path, b);
      this.loader.load(`/assets/${path}`, (g) => { b.setTemplate(g.scene); this.rewrite(b); }, undefined, () => b.setTemplate(null));
    }
    return b;
  }

  /** After a template arrives: every instance waiting for it gets its matrix. */
  rewrite(b) { for (let s = 0; s < b.count; s++) this.dirty.add(b.owner[s].i); }

  clear() {
    for (const b of this.batches.values()) {
      for (let s = b.count - 1; s >= 0; s--) b.owner[s].slot = -1;
      b.count = 0; b.owner.length = 0;
      for (const m of b.meshes) m.count = 0;
    }
    this.nodes.clear(); this.labelled.clear(); this.dirty.clear(); this.layers.clear(); this.orphans.clear();
    this.overrides.clear();
    this.byPath = null; this.version++;
  }

  remove(i) {
    const n = this.nodes.get(i);
    if (!n) return;
    if (n.batch) n.batch.remove(n);
    this.nodes.get(n.parent)?.children.delete(i);
    for (const c of n.children) this.dirty.add(c);
    this.nodes.delete(i);
    this.labelled.delete(i);
    this.layers.set(n.layer, (this.layers.get(n.layer) || 1) - 1);
    this.byPath = null; this.version++;
  }

  /** Takes node `i` as the replica has it now. */
  upsert(i, r, replica) {
    let n = this.nodes.get(i);
    if (!n) {
      n = { i, parent: null, children: new Set(), local: new THREE.Matrix4(), world: new THREE.Matrix4(), asset: '', batch: null, slot: -1,
        color: 0, visible: true, shown: true, label: '', layer: '', anchor: '', name: '' };
      this.nodes.set(i, n);
      // Children that arrived before their parent (same frame, lower index first) are linked now.
      const waiting = this.orphans.get(i);
      if (waiting) { for (const c of waiting) if (this.nodes.get(c)?.parent === i) n.children.add(c); this.orphans.delete(i); }
      this.byPath = null; this.version++;
    }
    if (n.parent !== r.parent) {
      this.nodes.get(n.parent)?.children.delete(i);
      n.parent = r.parent;
      if (r.parent != null) {
        const p = this.nodes.get(r.parent);
        if (p) p.children.add(i);
        else { if (!this.orphans.has(r.parent)) this.orphans.set(r.parent, []); this.orphans.get(r.parent).push(i); }
      }
      this.byPath = null; this.version++;
    }
    if (n.name !== r.name) { n.name = r.name; this.byPath = null; this.version++; }
    const u = replica.unitsPerMetre, q = quaternion(r.rotation, replica.rotationBits);
    tmpV.set(r.translation[0] / u, r.translation[1] / u, r.translation[2] / u);
    tmpQ.set(q[0], q[1], q[2], q[3]);
    tmpS.set(r.scale[0] / 1000, r.scale[1] / 1000, r.scale[2] / 1000);
    const o = this.overrides.get(i);
    if (o) overrideTransform(o, tmpV, tmpQ, tmpS);
    n.local.compose(tmpV, tmpQ, tmpS);
    n.anchor = r.anchor || '';
    n.visible = o && 'visible' in o ? o.visible : r.visible;
    n.color = o && 'color' in o ? o.color : r.color;
    if (n.layer !== r.layer) {
      this.layers.set(n.layer, (this.layers.get(n.layer) || 1) - 1);
      this.layers.set(r.layer, (this.layers.get(r.layer) || 0) + 1);
      n.layer = r.layer;
    }
    n.label = o && 'label' in o ? o.label : r.label || '';
    if (n.label) this.labelled.add(i); else this.labelled.delete(i);
    if (n.asset !== r.asset) {
      if (n.batch) n.batch.remove(n);
      n.batch = null;
      n.asset = r.asset;
      if (r.asset) { n.batch = this.batch(r.asset); n.batch.add(n); }
    }
    this.dirty.add(i);
  }

  /** Shows node `i` with some values of `o` instead of the stream's, until called again with `o` null; the stream's
   * later values for the node keep the override. `o`: { label, color (RGBA), visible, translation: [axis, metres],
   * rotation: [axis, radians], scale: [axis (-1: all three), factor], pose: { x, y, z, yaw (degrees) } }, each
   * optional — what a binding would write (BindingEngine.write). `r`, `replica`: the node as the stream has it. */
  override(i, o, r, replica) {
    if (o) this.overrides.set(i, o); else this.overrides.delete(i);
    if (r) this.upsert(i, r, replica);
  }

  /** Recomputes changed world matrices and fills the instance buffers with what `camera` sees (`height`: the
   * view's height in pixels; `noCull`: draw everything, as in VR where each eye has its own camera). */
  flush(camera = null, height = 0, noCull = false) {
    if (this.dirty.size) {
      const done = new Set();
      const visit = (i) => {
        if (done.has(i)) return;
        done.add(i);
        const n = this.nodes.get(i);
        if (!n) return;
        const p = n.parent == null ? null : this.nodes.get(n.parent);
        if (p) n.world.multiplyMatrices(p.world, n.local);
        else n.world.multiplyMatrices(this.anchorMatrix(n.anchor || 'default'), n.local);
        n.shown = n.visible && (!p || p.shown) && !this.hiddenLayers.has(n.layer);
        if (n.batch) n.batch.write(n, this.placement(n, p), n.shown);
        for (const c of n.children) visit(c);
      };
      // Parents first: a node's world matrix needs its parent's.
      const roots = [...this.dirty].filter((i) => { let p = this.nodes.get(i)?.parent; while (p != null) { if (this.dirty.has(p)) return false; p = this.nodes.get(p)?.parent; } return true; });
      for (const i of roots) visit(i);
      this.dirty.clear();
    }
    // What the camera sees: re-culled when it moved or the instances changed.
    if (camera) camera.updateMatrixWorld();
    const key = camera ? camera.matrixWorld.elements.join() + camera.projectionMatrix.elements.join() + height : '';
    const moved = key !== this.lastView;
    this.lastView = key;
    if (camera) {
      camera.matrixWorldInverse.getInverse ? camera.matrixWorldInverse.getInverse(camera.matrixWorld) : camera.matrixWorldInverse.copy(camera.matrixWorld).invert();
      tmpM.multiplyMatrices(camera.projectionMatrix, camera.matrixWorldInverse);
      if (this.frustum.setFromMatrix) this.frustum.setFromMatrix(tmpM); else this.frustum.setFromProjectionMatrix(tmpM);
    }
    const pixelsPerUnit = camera ? (height / 2) / Math.tan((camera.fov * Math.PI) / 360) : 0;
    for (const b of this.batches.values()) {
      if (!b.dirty && !moved) continue;
      if (noCull || !camera) b.cull(null, tmpV.set(0, 0, 0), 0, 0);
      else b.cull(this.frustum, camera.position, pixelsPerUnit, PlantView.minPixels);
    }
  }

  /** Where an instance is drawn: its world matrix, except that a selection ring is sized to what it marks (not
   * scaled with it: a ring under the floor would otherwise be the floor's size), and avatars are made visible. */
  placement(n, p) {
    if (n.asset === RING && p) {
      p.world.decompose(tmpV, tmpQ, tmpS);
      const r = Math.min(4, Math.max(0.6, (p.batch ? p.batch.radius : 0.8) * Math.max(tmpS.x, tmpS.z) * 0.9));
      return tmpM.compose(tmpV, new THREE.Quaternion(), new THREE.Vector3(r, 1, r)).clone();
    }
    if (AVATAR.test(n.asset)) return n.world.clone().multiply(tmpM.makeScale(2.5, 2.5, 2.5));
    return n.world;
  }

  setLayerHidden(layer, hidden) {
    if (hidden) this.hiddenLayers.add(layer); else this.hiddenLayers.delete(layer);
    for (const [i, n] of this.nodes) if (n.layer === layer) this.dirty.add(i);
  }

  /** Node id (path of names) → index. */
  indexOf(path) {
    if (!this.byPath) {
      this.byPath = new Map();
      for (const i of this.nodes.keys()) this.byPath.set(this.path(i), i);
    }
    return this.byPath.get(path);
  }

  path(i) {
    const parts = [];
    let n = this.nodes.get(i), guard = 0;
    while (n && guard++ < 1024) { parts.push(n.name); n = n.parent == null ? null : this.nodes.get(n.parent); }
    return parts.reverse().join('/');
  }

  worldPosition(i, out = new THREE.Vector3()) {
    const n = this.nodes.get(i);
    return n ? out.setFromMatrixPosition(n.world) : null;
  }

  /** World bounding box of node `i` and everything under it that is drawn. */
  bounds(i) {
    const box = new THREE.Box3(), b = new THREE.Box3();
    const walk = (k, depth) => {
      const n = this.nodes.get(k);
      if (!n || depth > 64 || !n.shown) return;
      if (n.batch && n.batch.parts && n.asset !== RING) {
        for (const p of n.batch.parts) {
          if (!p.geometry.boundingBox) p.geometry.computeBoundingBox();
          box.union(b.copy(p.geometry.boundingBox).applyMatrix4(tmpM.multiplyMatrices(n.world, p.matrix)));
        }
      }
      for (const c of n.children) walk(c, depth + 1);
    };
    walk(i, 0);
    if (box.isEmpty()) { const p = this.worldPosition(i); if (p) box.setFromCenterAndSize(p, new THREE.Vector3(1, 1, 1)); }
    return box;
  }

  /** The node drawn under a ray, or null. */
  pick(raycaster) {
    const meshes = [];
    for (const b of this.batches.values()) if (b.path !== RING && !AVATAR.test(b.path)) meshes.push(...b.meshes);
    const hits = raycaster.intersectObjects(meshes, false);
    for (const h of hits) {
      const n = h.object.userData.owners[h.instanceId];
      if (n && n.shown) return { index: n.i, point: h.point };
    }
    return null;
  }

  drawCalls() { let k = 0; for (const b of this.batches.values()) for (const m of b.meshes) if (m.count > 0) k++; return k; }
}

/** Instances smaller than this on screen (pixels across) are drawn as boxes… */
PlantView.minPixels = 12;
/** …and smaller than this not at all. */
PlantView.dropPixels = 1.5;

/** Labels: a pool of at most `max` DOM elements, nearest and most important first, none overlapping. */
export class LabelLayer {
  constructor(container, max) {
    this.root = document.createElement('div');
    this.root.className = 'labels';
    container.appendChild(this.root);
    this.max = max;
    this.pool = [];
    this.shown = 0;
  }

  /** `items`: [{ key, text, position (world), priority, className }]. */
  place(items, camera, width, height) {
    const v = new THREE.Vector3(), placed = [], cam = camera.position;
    const candidates = [];
    for (const it of items) {
      v.copy(it.position).project(camera);
      if (v.z < -1 || v.z > 1 || v.x < -1.05 || v.x > 1.05 || v.y < -1.05 || v.y > 1.05) continue;
      const d = cam.distanceTo(it.position);
      candidates.push({ it, x: (v.x + 1) / 2 * width, y: (1 - v.y) / 2 * height, score: it.priority * 1000 - d });
    }
    candidates.sort((a, b) => b.score - a.score);
    let k = 0;
    for (const c of candidates) {
      if (k >= this.max) break;
      const w = c.it.text.length * 6.6 + 10, h = 18;
      const rect = { l: c.x - w / 2, r: c.x + w / 2, t: c.y - h - 6, b: c.y - 6 };
      if (placed.some((p) => rect.l < p.r && rect.r > p.l && rect.t < p.b && rect.b > p.t)) continue;
      placed.push(rect);
      let el = this.pool[k];
      if (!el) { el = document.createElement('div'); this.pool[k] = el; }
      if (!el.parentNode) this.root.appendChild(el);
      if (el.textContent !== c.it.text) el.textContent = c.it.text;
      const cls = `label ${c.it.className || ''}`;
      if (el.className !== cls) el.className = cls;
      el.dataset.node = c.it.key;
      el.style.transform = `translate(${Math.round(rect.l)}px, ${Math.round(rect.t)}px)`;
      k++;
    }
    for (let j = k; j < this.pool.length; j++) if (this.pool[j].parentNode) this.pool[j].remove();
    this.shown = k;
    return placed;
  }
}
