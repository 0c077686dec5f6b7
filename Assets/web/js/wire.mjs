// SceneStream wire protocol v1 for browsers and node: decode server messages, encode client messages, apply frames
// to a replica. Written from Protocol/SPEC.md. No dependencies; inflate uses DecompressionStream("deflate-raw").

export const MSG = {
  hello: 0x01, subscribe: 0x02, ack: 0x03, presence: 0x04, select: 0x05, annotate: 0x06, handoffOffer: 0x07,
  handoffClaim: 0x08, playback: 0x09, ping: 0x0a, listSessions: 0x0b, refreshToken: 0x0c, follow: 0x0d, requestKeyframe: 0x0e,
  welcome: 0x81, keyframe: 0x82, delta: 0x83, alerts: 0x84, sessionState: 0x85, handoff: 0x86, error: 0x87, pong: 0x88, roomMembers: 0x89, anchors: 0x8A,
};
const NAMES = Object.fromEntries(Object.entries(MSG).map(([k, v]) => [v, k]));
export const FIELDS = ['structure', 'anchor', 'translation', 'rotation', 'scale', 'color', 'visible', 'label', 'asset', 'layer', 'zone'];
export const DEVICE = { unknown: 0, headset: 1, desktop: 2, mobile: 3 };

export class WireError extends Error {
  constructor(kind, where) { super(where ? `${kind} in ${where}` : kind); this.kind = kind; }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();

class Reader {
  constructor(bytes) { this.b = bytes; this.i = 0; }
  get remaining() { return this.b.length - this.i; }
  u8(f) { if (this.i >= this.b.length) throw new WireError('truncated', f); return this.b[this.i++]; }
  varint(f) {
    let out = 0, mul = 1;
    for (let n = 0; n < 10; n++) {
      const byte = this.u8(f);
      out += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) {
        if ((n === 9 && byte > 1) || (byte === 0 && n > 0)) throw new WireError('malformedVarint', f);  // too big, or overlong
        return out;
      }
      mul *= 128;
    }
    throw new WireError('malformedVarint', f);
  }
  zigzag(f) { const v = this.varint(f); return v % 2 === 1 ? -(v + 1) / 2 : v / 2; }
  string(f) {
    const n = this.varint(f);
    if (n > this.remaining) throw new WireError('truncated', f);
    const s = this.b.subarray(this.i, this.i + n);
    this.i += n;
    try { return utf8.decode(s); } catch { throw new WireError('invalidValue', f); }
  }
  count(f, min = 1) { const n = this.varint(f); if (n > this.remaining / min) throw new WireError('truncated', f); return n; }
  u32be(f) {
    if (this.remaining < 4) throw new WireError('truncated', f);
    const b = this.b, i = this.i; this.i += 4;
    return ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
  }
  bool(f) { const v = this.u8(f); if (v > 1) throw new WireError('invalidValue', f); return v === 1; }
  int32(f) { const v = this.zigzag(f); if (v < -2147483648 || v > 2147483647) throw new WireError('invalidValue', f); return v; }
  vec3(f) { return [this.int32(f), this.int32(f), this.int32(f)]; }
  rotation(f) {
    const first = this.varint(f), b = this.int32(f), c = this.int32(f);
    const unz = (v) => (v % 2 === 1 ? -(v + 1) / 2 : v / 2);
    const a = unz(Math.floor(first / (first % 2 === 1 ? 2 : 8)));
    if (a < -2147483648 || a > 2147483647) throw new WireError('invalidValue', f);
    if (first % 2 === 1) return { delta: true, abc: [a, b, c] };
    return { delta: false, largest: Math.floor(first / 2) % 4, abc: [a, b, c] };
  }
  enum(f, top) { const v = this.u8(f); if (v > top) throw new WireError('invalidValue', f); return v; }
  end() { if (this.remaining) throw new WireError('trailingBytes'); }
}

async function inflateRaw(bytes, limit = 16 << 20) {
  const ds = new DecompressionStream('deflate-raw');
  const writer = ds.writable.getWriter();
  writer.write(bytes).catch(() => {});
  writer.close().catch(() => {});
  const reader = ds.readable.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw new WireError('tooLarge');
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof WireError) throw e;
    throw new WireError('compression');
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

export function defaultNode() {
  return { parent: null, name: '', anchor: '', translation: [0, 0, 0], rotation: [3, 0, 0, 0], scale: [1000, 1000, 1000],
    color: 0, visible: true, label: '', asset: '', layer: '', zone: '' };
}

/** What comes before a frame's blocks (§6.1–6.2), the same in versions 1 and 2: the frame so far and its strings. */
function readHead(r, keyframe) {
  const f = { type: keyframe ? 'keyframe' : 'delta', version: r.varint('version') };
  if (keyframe) {
    f.sceneId = r.string('sceneId');
    f.positionUnitsPerMetre = r.varint('positionUnitsPerMetre');
    f.rotationBits = r.u8('rotationBits');
  } else {
    const back = r.varint('baseDistance');
    if (back > f.version) throw new WireError('invalidValue', 'baseDistance');
    f.base = f.version - back;
  }
  f.timeMs = r.varint('timeMs');
  f.nodeSpace = r.varint('nodeSpace');
  const strings = [];
  for (let n = r.count('strings'); n > 0; n--) strings.push(r.string('strings'));
  return [f, strings];
}

function decodeFrame(r, keyframe) {
  const [f, strings] = readHead(r, keyframe);
  const space = f.nodeSpace;
  const sref = (fld) => { const i = r.varint(fld); if (i >= strings.length) throw new WireError('invalidValue', fld); return strings[i]; };
  const gaps = (n, fld) => {
    const out = []; let prev = -1;
    for (let k = 0; k < n; k++) { const i = prev + 1 + r.varint(fld); if (i >= space) throw new WireError('invalidValue', fld); out.push(i); prev = i; }
    return out;
  };
  f.removed = keyframe ? [] : gaps(r.count('removed'), 'removed');
  const n = r.count('entered');
  const idx = gaps(n, 'entered.index');
  const masks = []; for (let k = 0; k < n; k++) masks.push(r.varint('entered.mask'));
  if (masks.some((m) => m >= 1 << FIELDS.length)) throw new WireError('invalidValue', 'entered.mask');
  const nodes = idx.map(() => defaultNode());
  FIELDS.forEach((name, bit) => {
    for (let k = 0; k < n; k++) {
      if (!(masks[k] & (1 << bit))) continue;
      const node = nodes[k];
      if (name === 'structure') {
        const p = r.varint('parent');
        if (p) {
          const v = p - 1; node.parent = idx[k] - (v % 2 === 1 ? -(v + 1) / 2 : v / 2);
          if (node.parent < 0 || node.parent >= space || node.parent === idx[k]) throw new WireError('invalidValue', 'parent');
        }
        node.name = sref('name');
      } else if (name === 'anchor' && node.parent !== null) throw new WireError('invalidValue', 'anchor');  // roots only
      else if (name === 'translation') node.translation = r.vec3(name);
      else if (name === 'scale') node.scale = r.vec3(name).map((v) => v + 1000);
      else if (name === 'rotation') {
        const rot = r.rotation(name);
        if (rot.delta) throw new WireError('invalidValue', 'entered.rotation');
        node.rotation = [rot.largest, ...rot.abc];
      } else if (name === 'color') node.color = r.u32be(name);
      else if (name === 'visible') node.visible = r.bool(name);
      else node[name] = sref(name);
    }
  });
  f.entered = idx.map((i, k) => [i, nodes[k]]);
  f.updated = [];
  if (!keyframe) {
    const m = r.count('updated');
    let uidx = [];
    if (m > 0) {
      const mode = r.u8('indexMode');
      if (mode === 0) uidx = gaps(m, 'updated.index');
      else if (mode === 1) {
        const len = Math.ceil(space / 8);
        if (r.remaining < len) throw new WireError('truncated', 'bitmask');
        for (let k = 0; k < len * 8; k++) if (r.b[r.i + (k >> 3)] & (1 << (k & 7))) uidx.push(k);
        r.i += len;
        if (uidx.length !== m || (m > 0 && uidx[m - 1] >= space)) throw new WireError('invalidValue', 'bitmask');
      } else throw new WireError('invalidValue', 'indexMode');
    }
    const umasks = uidx.map(() => r.varint('updated.mask'));
    if (umasks.some((u) => u >= 1 << FIELDS.length)) throw new WireError('invalidValue', 'updated.mask');
    const ups = uidx.map(() => ({}));
    FIELDS.forEach((name, bit) => {
      for (let k = 0; k < m; k++) {
        if (!(umasks[k] & (1 << bit))) continue;
        if (name === 'structure') throw new WireError('invalidValue', 'updated.structure');
        if (name === 'translation' || name === 'scale') ups[k][name] = r.vec3(name);
        else if (name === 'rotation') ups[k][name] = r.rotation(name);
        else if (name === 'color') ups[k][name] = r.u32be(name);
        else if (name === 'visible') ups[k][name] = r.bool(name);
        else ups[k][name] = sref(name);
      }
    });
    f.updated = uidx.map((i, k) => [i, ups[k]]);
  }
  r.end();
  return f;
}

function readPose(r) {
  const anchor = r.string('anchor'), position = r.vec3('position'), rot = r.rotation('rotation');
  if (rot.delta) throw new WireError('invalidValue', 'pose');
  return { anchor, position, rotation: [rot.largest, ...rot.abc] };
}

/** Decodes one server message (envelope included). Rejects with WireError on bad input. */
/** A server message; `version` is the protocol version the welcome chose (frames are range-coded from 2). */
export async function decodeServer(bytes, version = 1) {
  if (version >= 2 && (bytes[0] === MSG.keyframe || bytes[0] === MSG.delta)) return decodeFrameV2(bytes);
  if (bytes.length < 2) throw new WireError('truncated', 'envelope');
  const t = bytes[0], flags = bytes[1];
  if (flags & ~1) throw new WireError('reservedFlags');
  let body = bytes.subarray(2);
  if (flags & 1) body = await inflateRaw(body);
  const r = new Reader(body);
  const type = NAMES[t];
  let m;
  switch (type) {
    case 'keyframe': case 'delta': return decodeFrame(r, type === 'keyframe');
    case 'welcome':
      m = { type, version: r.varint(), sessionId: r.string(), sessionToken: r.string(), serverName: r.string(),
        heartbeatMs: r.varint(), maxMessageBytes: r.varint(), scenes: [] };
      for (let n = r.count(); n > 0; n--) m.scenes.push(r.string());
      if (m.version >= 2) m.ackWindow = r.varint();
      break;
    case 'alerts':
      m = { type, alerts: [] };
      for (let n = r.count('alerts', 5); n > 0; n--) {
        const a = { id: r.string() }; const node = r.varint();
        a.node = node ? node - 1 : null; a.severity = r.enum('severity', 2); a.state = r.enum('state', 1); a.timeMs = r.varint(); a.message = r.string();
        m.alerts.push(a);
      }
      break;
    case 'sessionState':
      m = { type, sessionId: r.string(), userId: r.string(), role: r.u8(), roomId: r.string(), members: [] };
      for (let n = r.count('members', 8); n > 0; n--) {
        m.members.push({ userId: r.string(), displayName: r.string(), device: r.u8(), role: r.u8(), color: r.u32be() });
      }
      m.selection = []; for (let n = r.count(); n > 0; n--) m.selection.push(r.varint());
      m.followUserId = r.string();
      m.playback = { mode: r.u8(), cursorMs: r.varint(), speedMilli: r.varint() };
      m.viewpoint = r.bool() ? readPose(r) : null;
      break;
    case 'handoff': {
      const kind = r.u8();
      if (kind === 0) m = { type, kind: 'offer', requestId: r.varint(), code: r.string(), url: r.string(), expiresMs: r.varint() };
      else if (kind === 1) m = { type, kind: 'handedOff', to: r.u8(), detached: r.bool() };
      else if (kind === 2) m = { type, kind: 'claimed', requestId: r.varint(), sessionId: r.string(), sessionToken: r.string(), from: r.u8() };
      else if (kind === 3) {
        m = { type, kind: 'sessions', requestId: r.varint(), sessions: [] };
        for (let n = r.count('sessions', 4); n > 0; n--) m.sessions.push({ sessionId: r.string(), device: r.u8(), sceneId: r.string(), lastSeenMs: r.varint() });
      } else throw new WireError('invalidValue', 'handoff.kind');
      break;
    }
    case 'error': m = { type, code: r.varint(), requestId: r.varint(), message: r.string() }; break;
    case 'pong': m = { type, nonce: r.varint(), serverTimeMs: r.varint() }; break;
    case 'roomMembers':
      m = { type, roomId: r.string(), changes: [] };
      for (let n = r.count('changes', 2); n > 0; n--) {
        const userId = r.string(); const members = [];
        for (let k = r.count('members', 7); k > 0; k--) {
          members.push({ userId, displayName: r.string(), device: r.u8(), role: r.u8(), color: r.u32be() });
        }
        m.changes.push({ userId, members });
      }
      break;
    case 'anchors':
      // Version 3 (SPEC §12): the site's spatial anchors, the whole set.
      m = { type, sceneId: r.string(), anchors: [] };
      for (let n = r.count('anchors', 10); n > 0; n--) {
        const a = { id: r.string(), position: [r.int32('position'), r.int32('position'), r.int32('position')], rotation: [] };
        for (let k = 0; k < 4; k++) {
          const q = r.int32('rotation');
          if (q < -1000000 || q > 1000000) throw new WireError('invalidValue', 'anchors.rotation');
          a.rotation.push(q);
        }
        a.handles = [];
        for (let k = r.count('handles', 2); k > 0; k--) a.handles.push({ platform: r.string(), value: r.string() });
        a.updatedMs = r.varint();
        m.anchors.push(a);
      }
      break;
    default: throw new WireError('unknownMessageType');
  }
  r.end();
  return m;
}

class Writer {
  constructor() { this.b = []; }
  u8(v) { this.b.push(v & 0xff); return this; }
  varint(v) { while (v >= 128) { this.b.push((v % 128) | 128); v = Math.floor(v / 128); } this.b.push(v); return this; }
  zigzag(v) { return this.varint(v < 0 ? -2 * v - 1 : 2 * v); }
  string(s) { const e = enc.encode(s); this.varint(e.length); for (const x of e) this.b.push(x); return this; }
  pose(p) {
    this.string(p.anchor); p.position.forEach((v) => this.zigzag(v));
    const [L, a, b, c] = p.rotation;
    const za = a < 0 ? -2 * a - 1 : 2 * a;
    this.varint(za * 8 + L * 2); this.zigzag(b); this.zigzag(c);
    return this;
  }
  done(type) { return new Uint8Array([MSG[type], 0, ...this.b]); }
}

export const encode = {
  hello: ({ device = DEVICE.desktop, name = 'web-viewer', token = '', resumeToken = '', resumeVersion = 0, minVersion = 1, maxVersion = 1 } = {}) =>
    new Writer().varint(minVersion).varint(maxVersion).u8(device).string(name).string(token).string(resumeToken).varint(resumeVersion).done('hello'),
  subscribe: ({ requestId = 1, sceneId, layers = [], zones = [], rateHz = 0, byteBudget = 0 }) => {
    const w = new Writer().varint(requestId).string(sceneId).u8(0).varint(layers.length);
    layers.forEach((l) => w.string(l)); w.varint(zones.length); zones.forEach((z) => w.string(z));
    return w.varint(rateHz).varint(byteBudget).done('subscribe');
  },
  ack: (version) => new Writer().varint(version).done('ack'),
  presence: ({ head = null, pointer = null, target = null }) => {
    const w = new Writer().u8((head ? 1 : 0) | (pointer ? 8 : 0));
    if (head) w.pose(head);
    if (pointer) w.pose(pointer);
    return w.varint(target == null ? 0 : target + 1).done('presence');
  },
  select: (nodes) => { const w = new Writer().varint(nodes.length); nodes.forEach((n) => w.varint(n)); return w.done('select'); },
  annotate: ({ requestId, node, offset = [0, 0, 0], text = '', remove = '' }) => {
    const w = new Writer().varint(requestId).varint(node); offset.forEach((v) => w.zigzag(v));
    return w.string(text).string(remove).done('annotate');
  },
  handoffOffer: (requestId, keepOldDevice = false) => new Writer().varint(requestId).u8(keepOldDevice ? 1 : 0).done('handoffOffer'),
  handoffClaim: (requestId, code = '', sessionId = '') => new Writer().varint(requestId).string(code).string(sessionId).done('handoffClaim'),
  playback: (op, timeMs = 0, speedMilli = 1000) => new Writer().u8(op).varint(timeMs).varint(speedMilli).done('playback'),
  ping: (nonce) => new Writer().varint(nonce).done('ping'),
  listSessions: (requestId) => new Writer().varint(requestId).done('listSessions'),
  follow: (userId) => new Writer().string(userId).done('follow'),
  requestKeyframe: (requestId) => new Writer().varint(requestId).done('requestKeyframe'),
};

/** A client's copy of the scene, built from keyframes and deltas (SPEC §6.7). A bad frame leaves it unchanged. */
export class Replica {
  constructor() { this.version = null; this.nodes = new Map(); this.sceneId = ''; this.unitsPerMetre = 1000; this.rotationBits = 12; this.timeMs = 0; }

  apply(f) {
    if (f.type === 'keyframe') {
      const fresh = new Map(f.entered);
      for (const [i, n] of fresh) if (n.parent != null && !fresh.has(n.parent)) throw new WireError('unknownNode', `parent of ${i}`);
      this.nodes = fresh; this.sceneId = f.sceneId; this.unitsPerMetre = f.positionUnitsPerMetre; this.rotationBits = f.rotationBits;
      this.version = f.version; this.timeMs = f.timeMs;
      return { keyframe: true, removed: [], entered: f.entered.map(([i]) => i), updated: [] };
    }
    if (this.version !== f.base) throw new WireError('baseMismatch', `replica ${this.version}, delta base ${f.base}`);
    for (const i of f.removed) if (!this.nodes.has(i)) throw new WireError('unknownNode', `removed ${i}`);
    const removed = new Set(f.removed), entered = new Set(f.entered.map(([i]) => i));
    for (const [i, n] of f.entered) {
      if (this.nodes.has(i) && !removed.has(i)) throw new WireError('invalidValue', `entered ${i} twice`);
      if (n.parent != null && !entered.has(n.parent) && (!this.nodes.has(n.parent) || removed.has(n.parent))) throw new WireError('unknownNode', `parent of ${i}`);
    }
    for (const [i, u] of f.updated) {
      if (!this.nodes.has(i) || removed.has(i)) throw new WireError('unknownNode', `updated ${i}`);
      if ('anchor' in u && this.nodes.get(i).parent != null) throw new WireError('invalidValue', `anchor of ${i}: only roots name one`);
    }
    const wrap = (a, b) => ((a + b + 2 ** 31) % 2 ** 32 + 2 ** 32) % 2 ** 32 - 2 ** 31;  // differences wrap in int32
    for (const i of f.removed) this.nodes.delete(i);
    for (const [i, n] of f.entered) this.nodes.set(i, n);
    for (const [i, u] of f.updated) {
      const n = this.nodes.get(i);
      for (const [k, v] of Object.entries(u)) {
        if (k === 'translation' || k === 'scale') n[k] = n[k].map((a, j) => wrap(a, v[j]));
        else if (k === 'rotation') n.rotation = v.delta ? [n.rotation[0], ...n.rotation.slice(1).map((a, j) => wrap(a, v.abc[j]))] : [v.largest, ...v.abc];
        else n[k] = v;
      }
    }
    this.version = f.version; this.timeMs = f.timeMs;
    return { keyframe: false, removed: f.removed, entered: [...entered], updated: f.updated.map(([i]) => i) };
  }

  path(i) {
    const parts = [];
    let n = this.nodes.get(i), guard = 0;
    while (n && guard++ < 1024) { parts.push(n.name); n = n.parent == null ? null : this.nodes.get(n.parent); }
    return parts.reverse().join('/');
  }
}

/** The unit quaternion [x, y, z, w] a smallest-three rotation [L, a, b, c] stands for. */
export function quaternion(rot, bits) {
  const M = 2 ** (bits - 1) - 1, k = 1 / (M * Math.SQRT2);
  const [L, a0, b0, c0] = rot;
  const a = a0 * k, b = b0 * k, c = c0 * k;
  const d = Math.sqrt(Math.max(0, 1 - a * a - b * b - c * c));
  switch (L & 3) {
    case 0: return [d, a, b, c];
    case 1: return [a, d, b, c];
    case 2: return [a, b, d, c];
    default: return [a, b, c, d];
  }
}

/** Smallest-three at `bits` for a unit quaternion [x, y, z, w]. */
export function smallestThree(q, bits) {
  let L = 3;
  for (let i = 0; i < 4; i++) if (Math.abs(q[i]) > Math.abs(q[L]) + 1e-12) L = i;
  const s = q[L] < 0 ? -1 : 1, M = 2 ** (bits - 1) - 1;
  const rest = [0, 1, 2, 3].filter((i) => i !== L).map((i) => Math.max(-M, Math.min(M, Math.round(s * q[i] * Math.SQRT2 * M))));
  return [L, ...rest];
}

// --- Protocol version 2 frame bodies (SPEC §11): v1's header and string table, then range-coded blocks. ---

/** LZMA's binary range decoder; the encoder left out the first byte (always 0) and up to 8 trailing zeros. */
class RangeDecoder {
  constructor(b) {
    this.b = b; this.i = 0; this.range = 0xffffffff; this.code = 0; this.overrun = 0;
    for (let k = 0; k < 4; k++) this.code = ((this.code * 256) + this.byte()) >>> 0;
  }
  byte() { if (this.i < this.b.length) return this.b[this.i++]; this.overrun++; return 0; }
  normalize() {
    while (this.range < 0x1000000) {
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.byte()) >>> 0;
    }
  }
  /** One bit with the adaptive probability probs[k] (of a 0, in 1/2048ths; it moves 1/16 of the way). */
  bit(probs, k) {
    const p = probs[k], bound = (this.range >>> 11) * p;
    let out;
    if (this.code < bound) { this.range = bound; probs[k] = p + ((2048 - p) >> 4); out = 0; }
    else { this.code -= bound; this.range -= bound; probs[k] = p - (p >> 4); out = 1; }
    this.normalize();
    return out;
  }
  direct(n) {
    let v = 0;
    for (let k = 0; k < n; k++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) { this.code -= this.range; b = 1; }
      v = v * 2 + b;
      this.normalize();
    }
    return v;
  }
}

const T = 3;
class UIntModel {
  constructor() { this.length = new Uint16Array(65).fill(1024); this.top = new Uint16Array(65 << T).fill(1024); }
  decode(d, f) {
    let n = 0;
    while (n < 64 && d.bit(this.length, n)) n++;
    if (n > 52) throw new WireError('invalidValue', f);  // no valid value is that long (and Numbers end at 2^53)
    const t = Math.min(n, T);
    let node = 1, x = 1;
    for (let k = 0; k < t; k++) { const b = d.bit(this.top, (n << T) + node); node = node * 2 + b; x = x * 2 + b; }
    x = x * 2 ** (n - t) + d.direct(n - t);
    return x - 1;
  }
}
/** Three int32s: which are non-zero (a 3-bit tree per run position, x = 4, y = 2, z = 1), then each non-zero
 * one's sign and magnitude − 1. */
class VecModel {
  constructor() {
    this.pattern = Array.from({ length: 8 }, () => new TreeModel(3)); this.sign = new Uint16Array(3).fill(1024);
    this.magnitude = [new UIntModel(), new UIntModel(), new UIntModel()];
  }
  decode(d, run, f) {
    const p = this.pattern[run].decode(d), v = [0, 0, 0];
    for (let k = 0; k < 3; k++) {
      if (!(p & (4 >> k))) continue;
      const negative = d.bit(this.sign, k), m = this.magnitude[k].decode(d, f);
      v[k] = negative ? -m - 1 : m + 1;
      if (v[k] < -2147483648 || v[k] > 2147483647) throw new WireError('invalidValue', f);
    }
    return v;
  }
}
class TreeModel {
  constructor(bits) { this.bits = bits; this.p = new Uint16Array(1 << bits).fill(1024); }
  decode(d) { let node = 1; for (let k = 0; k < this.bits; k++) node = node * 2 + d.bit(this.p, node); return node - (1 << this.bits); }
}
/** Nine U models: after a zero gap one per length of the zero run (1…7, longer as 7); else one for a previous gap
 * of 1…7 (or none yet) and one for 8 or more. */
class GapModel {
  constructor() { this.models = Array.from({ length: 9 }, () => new UIntModel()); this.previous = 1; this.zeros = 0; }
  decode(d, f) {
    const ctx = this.previous === 0 ? Math.min(this.zeros, 7) - 1 : this.previous < 8 ? 7 : 8;
    const g = this.models[ctx].decode(d, f);
    this.zeros = g === 0 ? this.zeros + 1 : 0;
    this.previous = g;
    return g;
  }
}
/** A "same as the previous mask" bit (context: the record follows the one before directly; the one before was the
 * same), else the bits one by one in the context of the previous mask's bit. */
class MaskModel {
  constructor() { this.p = new Uint16Array(22).fill(1024); this.same = new Uint16Array(4).fill(1024); this.previous = 0; this.previousSame = 1; }
  decode(d, first, follows) {
    const same = d.bit(this.same, 2 * follows + this.previousSame);
    let m = this.previous;
    if (!same) {
      m = 0;
      for (let k = first; k < 11; k++) if (d.bit(this.p, k * 2 + ((this.previous >> k) & 1))) m |= 1 << k;
    }
    this.previous = m; this.previousSame = same;
    return m;
  }
}
/** How many records right before each one have consecutive indices (at most 7). */
function runPositions(idx) {
  const out = new Array(idx.length).fill(0);
  for (let k = 1; k < idx.length; k++) if (idx[k] === idx[k - 1] + 1) out[k] = Math.min(out[k - 1] + 1, 7);
  return out;
}

/** A version-2 keyframe or delta message, as the same object decodeServer gives for a version-1 frame. */
export function decodeFrameV2(bytes) {
  if (bytes.length < 2) throw new WireError('truncated', 'envelope');
  if (bytes[0] !== MSG.keyframe && bytes[0] !== MSG.delta) throw new WireError('unknownMessageType', 'envelope');
  if (bytes[1] !== 0) throw new WireError('reservedFlags', 'envelope');
  const keyframe = bytes[0] === MSG.keyframe;
  const r = new Reader(bytes.subarray(2));
  const [f, strings] = readHead(r, keyframe);
  const space = f.nodeSpace;
  const rest = r.b.subarray(r.i);
  const d = new RangeDecoder(rest);
  const most = Math.min(space, 800 * (rest.length + 8));
  const counts = new UIntModel(), refs = Array.from({ length: 11 }, () => new UIntModel());
  const count = (fld) => { const n = counts.decode(d, fld); if (n > most) throw new WireError('invalidValue', fld); return n; };
  const indices = (n, model, fld) => {
    const out = []; let prev = -1;
    for (let k = 0; k < n; k++) { const i = prev + 1 + model.decode(d, fld); if (i >= space) throw new WireError('invalidValue', fld); out.push(i); prev = i; }
    return out;
  };
  const ref = (bit, fld) => { const i = refs[bit].decode(d, fld); if (i >= strings.length) throw new WireError('invalidValue', fld); return strings[i]; };
  const ints = () => new VecModel();
  const vec = (m, run, fld) => m.decode(d, run, fld);
  const trees = () => [new TreeModel(8), new TreeModel(8), new TreeModel(8), new TreeModel(8)];
  const color = (m) => m.reduce((c, t) => c * 256 + t.decode(d), 0);
  const strFields = [[7, 'label'], [8, 'asset'], [9, 'layer'], [10, 'zone']];

  f.removed = keyframe ? [] : indices(count('removed'), new GapModel(), 'removed');
  const idx = indices(count('entered'), new GapModel(), 'entered');
  const runs = runPositions(idx), em = new MaskModel(), masks = idx.map((_, k) => em.decode(d, 0, runs[k] ? 1 : 0));
  const nodes = idx.map(() => defaultNode());
  const parent = new UIntModel(), et = ints(), er = ints(), es = ints(), elargest = new TreeModel(2), ecolor = trees(), evis = new Uint16Array(1).fill(1024);
  masks.forEach((m, k) => {
    if (!(m & 1)) return;
    const p = parent.decode(d, 'parent');
    if (p) {
      const v = p - 1; nodes[k].parent = idx[k] - (v % 2 === 1 ? -(v + 1) / 2 : v / 2);
      if (nodes[k].parent < 0 || nodes[k].parent >= space || nodes[k].parent === idx[k]) throw new WireError('invalidValue', 'parent');
    }
    nodes[k].name = ref(0, 'name');
  });
  masks.forEach((m, k) => { if (m & 2) { if (nodes[k].parent !== null) throw new WireError('invalidValue', 'anchor'); nodes[k].anchor = ref(1, 'anchor'); } });
  masks.forEach((m, k) => { if (m & 4) nodes[k].translation = vec(et, runs[k], 'translation'); });
  masks.forEach((m, k) => { if (m & 8) { const L = elargest.decode(d); nodes[k].rotation = [L, ...vec(er, runs[k], 'rotation')]; } });
  masks.forEach((m, k) => { if (m & 16) nodes[k].scale = vec(es, runs[k], 'scale').map((v) => v + 1000); });
  masks.forEach((m, k) => { if (m & 32) nodes[k].color = color(ecolor); });
  masks.forEach((m, k) => { if (m & 64) nodes[k].visible = d.bit(evis, 0) === 1; });
  for (const [bit, name] of strFields) masks.forEach((m, k) => { if (m & (1 << bit)) nodes[k][name] = ref(bit, name); });
  f.entered = idx.map((i, k) => [i, nodes[k]]);
  f.updated = [];
  if (!keyframe) {
    const uidx = indices(count('updated'), new GapModel(), 'updated');
    const uruns = runPositions(uidx), um = new MaskModel(), ups = uidx.map(() => ({}));
    const umasks = uidx.map((_, k) => um.decode(d, 1, uruns[k] ? 1 : 0));
    const ut = ints(), urd = ints(), ura = ints(), us = ints(), isDelta = new Uint16Array(1).fill(1024), ulargest = new TreeModel(2), ucolor = trees(), uvis = new Uint16Array(1).fill(1024);
    umasks.forEach((m, k) => { if (m & 2) ups[k].anchor = ref(1, 'anchor'); });
    umasks.forEach((m, k) => { if (m & 4) ups[k].translation = vec(ut, uruns[k], 'translation'); });
    umasks.forEach((m, k) => {
      if (!(m & 8)) return;
      if (d.bit(isDelta, 0)) ups[k].rotation = { delta: true, abc: vec(urd, uruns[k], 'rotation') };
      else { const L = ulargest.decode(d); ups[k].rotation = { delta: false, largest: L, abc: vec(ura, uruns[k], 'rotation') }; }
    });
    umasks.forEach((m, k) => { if (m & 16) ups[k].scale = vec(us, uruns[k], 'scale'); });
    umasks.forEach((m, k) => { if (m & 32) ups[k].color = color(ucolor); });
    umasks.forEach((m, k) => { if (m & 64) ups[k].visible = d.bit(uvis, 0) === 1; });
    for (const [bit, name] of strFields) umasks.forEach((m, k) => { if (m & (1 << bit)) ups[k][name] = ref(bit, name); });
    f.updated = uidx.map((i, k) => [i, ups[k]]);
  }
  if (d.overrun > 8) throw new WireError('truncated', 'range-coded blocks');
  return f;
}
