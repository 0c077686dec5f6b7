// The JavaScript decoder against every Protocol/vectors case: node --test Tests/web
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { decodeServer, decodeFrameV2, encode, Replica, WireError, quaternion, smallestThree } from '../../Assets/web/js/wire.mjs';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'Protocol', 'vectors');
const names = readdirSync(dir).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)).sort();
const load = (n) => [new Uint8Array(readFileSync(join(dir, `${n}.bin`))), JSON.parse(readFileSync(join(dir, `${n}.json`), 'utf8'))];

for (const name of names.filter((n) => n.startsWith('server-'))) {
  test(`decodes ${name}`, async () => {
    const [bytes, desc] = load(name);
    const m = await decodeServer(bytes);
    const want = desc.message;
    assert.equal(m.type, want.type);
    if (m.type === 'keyframe' || m.type === 'delta') {
      assert.equal(String(m.version), want.version);
      assert.equal(String(m.timeMs), want.timeMs);
      assert.equal(m.nodeSpace, want.nodeSpace);
      const got = new Map(m.entered);
      assert.deepEqual([...got.keys()], want.entered.map((e) => e.index));
      for (const e of want.entered) {
        const n = got.get(e.index);
        for (const [k, v] of Object.entries(e)) {
          if (k === 'index') continue;
          if (k === 'rotation') assert.deepEqual(n.rotation, [v.largest, ...v.abc]);
          else assert.deepEqual(n[k], v, `${e.index}.${k}`);
        }
      }
      if (m.type === 'delta') {
        assert.equal(String(m.base), want.baseVersion);
        assert.deepEqual(m.removed, want.removed);
        assert.deepEqual(m.updated.map(([i]) => i), want.updated.map((u) => u.index));
        m.updated.forEach(([, u], k) => {
          const w = want.updated[k];
          if (w.translationDelta) assert.deepEqual(u.translation, w.translationDelta);
          if (w.rotationDelta) assert.deepEqual(u.rotation, { delta: true, abc: w.rotationDelta });
          if (w.rotation) assert.deepEqual(u.rotation, { delta: false, largest: w.rotation.largest, abc: w.rotation.abc });
          if (w.scaleDelta) assert.deepEqual(u.scale, w.scaleDelta);
          for (const key of ['label', 'color', 'visible', 'anchor', 'asset', 'layer', 'zone']) if (key in w) assert.equal(u[key], w[key], key);
          // Every field the description names was decoded, and nothing else.
          assert.deepEqual(Object.keys(u).sort(), Object.keys(w).filter((k) => k !== 'index').map((k) => k.replace('Delta', '')).sort());
        });
      }
    } else if (m.type === 'anchors') {
      assert.equal(m.sceneId, want.sceneId);
      assert.deepEqual(m.anchors.map((a) => ({ ...a, updatedMs: String(a.updatedMs) })), want.anchors);
    } else if (m.type === 'roomMembers') {
      assert.equal(m.roomId, want.roomId);
      assert.deepEqual(m.changes.map((c) => [c.userId, c.members.map((x) => [x.userId, x.displayName, x.color])]),
        want.changes.map((c) => [c.userId, c.members.map((x) => [c.userId, x.displayName, x.color])]));
    } else {
      for (const [k, v] of Object.entries(want)) {
        if (k === 'type' || k === 'codeName') continue;
        if (typeof v === 'object' && v !== null) continue;
        if (['device', 'role', 'from', 'to', 'severity', 'state'].includes(k)) continue;
        assert.equal(String(m[k]), String(v), k);
      }
    }
  });
}

for (const name of names.filter((n) => n.startsWith('invalid-'))) {
  const [bytes, desc] = load(name);
  if (desc.direction !== 'server-to-client') continue;
  test(`refuses ${name}`, async () => {
    await assert.rejects(decodeServer(bytes), (e) => e instanceof WireError && e.kind === desc.error);
  });
}

for (const name of names.filter((n) => n.startsWith('client-'))) {
  const [bytes, desc] = load(name);
  const m = desc.message;
  const dev = { unknown: 0, headset: 1, desktop: 2, mobile: 3 };
  const ops = { seek: 0, play: 1, pause: 2, live: 3 };
  const encoders = {
    hello: () => encode.hello({ minVersion: m.minVersion, maxVersion: m.maxVersion, device: dev[m.device], name: m.clientName, token: m.token, resumeToken: m.resumeToken, resumeVersion: Number(m.resumeVersion) }),
    ack: () => encode.ack(Number(m.version)),
    ping: () => encode.ping(Number(m.nonce)),
    select: () => encode.select(m.nodes),
    annotate: () => encode.annotate({ requestId: m.requestId, node: m.node, offset: m.offset, text: m.text, remove: m.remove }),
    handoffOffer: () => encode.handoffOffer(m.requestId, m.keepOldDevice),
    handoffClaim: () => encode.handoffClaim(m.requestId, m.code, m.sessionId),
    listSessions: () => encode.listSessions(m.requestId),
    follow: () => encode.follow(m.userId),
    requestKeyframe: () => encode.requestKeyframe(m.requestId),
    playback: () => encode.playback(ops[m.op], Number(m.timeMs), m.speedMilli),
    subscribe: () => (m.region ? null : encode.subscribe({ requestId: m.requestId, sceneId: m.sceneId, layers: m.layers, zones: m.zones, rateHz: m.rateHz, byteBudget: m.byteBudget })),
  };
  if (!encoders[m.type]) continue;
  test(`encodes ${name} byte for byte`, () => {
    const out = encoders[m.type]();
    if (out) assert.deepEqual([...out], [...bytes]);
  });
}

test('replica applies a keyframe and refuses a delta on the wrong base', async () => {
  const r = new Replica();
  r.apply(await decodeServer(load('server-keyframe')[0]));
  assert.equal(r.version, 42);
  assert.equal(r.path(2), 'hall-a/robot-01/j1');
  const before = JSON.stringify([...r.nodes]);
  const bad = { type: 'delta', base: 41, version: 43, timeMs: 0, removed: [2], entered: [], updated: [] };
  assert.throws(() => r.apply(bad), (e) => e.kind === 'baseMismatch');
  assert.equal(JSON.stringify([...r.nodes]), before);
});

test('the sequence applied in order gives its replica; out of order it is refused', async () => {
  const r = new Replica();
  for (const k of [1, 2, 3]) r.apply(await decodeServer(load(`server-sequence-${k}`)[0]));
  const want = new Replica();
  want.apply(await decodeServer(load('server-sequence-replica')[0]));
  assert.equal(r.version, 12);
  assert.deepEqual([...r.nodes].sort((a, b) => a[0] - b[0]), [...want.nodes].sort((a, b) => a[0] - b[0]));
  const early = new Replica();
  early.apply(await decodeServer(load('server-sequence-1')[0]));
  await assert.rejects(async () => early.apply(await decodeServer(load('server-sequence-3')[0])), (e) => e.kind === 'baseMismatch');
  assert.equal(early.version, 10);
  assert.equal(early.nodes.size, 4);
});

for (const name of names.filter((n) => n.startsWith('v2-'))) {
  test(`version 2: ${name} decodes to the same frame as its version-1 vector`, async () => {
    const [bytes, desc] = load(name);
    assert.equal(desc.protocolVersion, 2);
    const want = await decodeServer(load(name.slice(3))[0]);
    assert.deepEqual(decodeFrameV2(bytes), want);
  });
}

test('version 2: every cut of a delta is refused or decodes, never reads past its end', () => {
  const [bytes] = load('v2-server-delta');
  let refused = 0;
  for (let cut = 0; cut < bytes.length; cut++) {
    try { decodeFrameV2(bytes.subarray(0, cut)); } catch (e) { assert.ok(e instanceof WireError); refused++; }
  }
  assert.ok(refused > 0);
});

test('truncated messages are typed errors', async () => {
  const [bytes] = load('server-delta');
  for (let cut = 0; cut < bytes.length; cut++) {
    await assert.rejects(decodeServer(bytes.subarray(0, cut)), (e) => e instanceof WireError);
  }
});

test('smallest-three round trip', () => {
  const q = [0.1, 0.7, -0.1, 0.7];
  const n = Math.hypot(...q);
  const u = q.map((v) => v / n);
  const back = quaternion(smallestThree(u, 12), 12);
  const dot = Math.abs(u.reduce((s, v, i) => s + v * back[i], 0));
  assert.ok(dot > 0.99999);
});
