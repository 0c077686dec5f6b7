"""The viewer on the site's anchors (protocol 3, SPEC §12), in headless Chromium against the real server, on a copy of
the demo plant with a second anchor, `yard`: the viewer speaks 3, takes the anchors an admin registers without a
reload and places the yard's root at its site pose (composed with the root's and the node's own transforms), and
back where it was when the anchor is removed; presence is sent in the anchor's frame, so another viewer sees the
avatar where the camera is even on a rotated anchor; where the browser has no WebXR anchors (headless Chromium) the
Session tab says so and nothing throws."""
import asyncio
import json
import math
import shutil
from pathlib import Path

import pytest

from cdp import Browser
from test_viewer_engineer import browse as engineer_browse
from conftest import Server
from test_reload import request

ROOT = Path(__file__).resolve().parents[2]
TANK = "yard/tank"
LINE = "hall-a/line-01"
ROOT_T = [3, 0, 1]
TANK_T, TANK_RY = [1, 0.5, 2], 30
S45 = math.sin(math.pi / 4)
YARD = {"position": [20, 0, -5], "rotation": [0, S45, 0, S45],   # 90° about +Y
        "handles": {"webxr": "5d0c6a1e-8f3b-4c2d-9e7a-1b2c3d4e5f60", "marker": "qr:yard-gate"}}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An open-mode server (no simulator) on the demo plant plus the yard: an anchor, its root and a tank on it."""
    tmp = tmp_path_factory.mktemp("viewer-anchors")
    dst = tmp / "plant"
    shutil.copytree(ROOT / "Assets" / "plants" / "demo", dst)
    scene = json.loads((dst / "scene.json").read_text())
    scene["anchors"].append({"id": "yard", "description": "Marker on the yard gate"})
    scene["nodes"] += [{"id": "yard", "anchor": "yard", "zone": "yard", "t": ROOT_T},
                       {"id": TANK, "t": TANK_T, "ry": TANK_RY, "asset": "models/tank.gltf", "label": "Yard tank"}]
    (dst / "scene.json").write_text(json.dumps(scene))
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps({"simulator": False, "plant": str(dst), "data": str(tmp / "data"), "staleness": {"enabled": False}}))
    server = Server("--config", str(cfg))
    yield server
    assert server.stop() == 0


def browse(test):
    """test_viewer_engineer's browse, with console errors failing the test too."""
    engineer_browse(test, failing=("exception", "error"))


def put(server, anchor, body):
    status, text = request(server, "PUT", f"/api/anchors/{anchor}", body)
    assert status == 200, text


def delete(server, anchor):
    status, text = request(server, "DELETE", f"/api/anchors/{anchor}")
    assert status == 200, text


# ---------------------------------------------------------------------------------------------- small 3D maths

def qmul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return [aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz]


def rotate(q, v):
    x, y, z, _ = qmul(qmul(q, [v[0], v[1], v[2], 0]), [-q[0], -q[1], -q[2], q[3]])
    return [x, y, z]


def ry(deg):
    h = math.radians(deg) / 2
    return [0, math.sin(h), 0, math.cos(h)]


def add(a, b):
    return [x + y for x, y in zip(a, b)]


def sub(a, b):
    return [x - y for x, y in zip(a, b)]


def near(a, b, tol=0.001):
    return max(abs(x - y) for x, y in zip(a, b)) <= tol


def same_rotation(a, b, tol=1e-5):
    return abs(abs(sum(x * y for x, y in zip(a, b))) - 1) <= tol


def placed_at(node, position, tol=0.001):
    """JS: node `node` is drawn within `tol` metres of `position`."""
    return (f"(() => {{ const p = sceneStream.worldPosition({json.dumps(node)}); const w = {json.dumps(position)}; "
            f"return !!p && Math.max(...p.map((v, k) => Math.abs(v - w[k]))) <= {tol}; }})()")


async def ready(page):
    await page.wait(f"window.sceneStream && sceneStream.version && sceneStream.drawn > 10 && sceneStream.worldPosition({json.dumps(TANK)})",
                    what="the scene drawn, the yard's tank placed")


# ------------------------------------------------------------------------------------------------------- tests

def test_registered_anchor_places_its_roots_live_and_removing_it_puts_them_back(site):
    async def test(b):
        page = await b.open(f"http://127.0.0.1:{site.port}/?user=sam")
        await ready(page)
        # The viewer offers 3 and the server chose it: frames are version 2's, and anchors come (none yet).
        assert await page.eval("sceneStream.protocolVersion") == 3
        assert await page.eval("sceneStream.anchors()") == []
        await page.wait("document.getElementById('anchor-status').textContent.startsWith('Anchors: none registered')",
                        what="the status line: no anchors")
        await page.eval("window.notReloaded = true")

        # Unregistered: the yard stands where the desktop lays an anchor (its own transform, moved aside, not turned).
        before = await page.eval(f"sceneStream.worldPose({json.dumps(TANK)})")
        root_before = await page.eval("sceneStream.worldPose('yard')")
        line_before = await page.eval(f"sceneStream.worldPose({json.dumps(LINE)})")
        assert same_rotation(before["rotation"], ry(TANK_RY)), before
        assert near(sub(before["position"], root_before["position"]), TANK_T), (before, root_before)

        put(site, "yard", YARD)
        await page.wait("sceneStream.anchors().length === 1", what="the anchor in the viewer without a reload")
        got = (await page.eval("sceneStream.anchors()"))[0]
        assert got["id"] == "yard" and got["handles"] == YARD["handles"], got
        assert near(got["position"], YARD["position"]) and near(got["rotation"], YARD["rotation"], 1e-6), got
        assert got["updatedMs"] == site.json("/api/anchors")["anchors"][1]["updatedMs"]

        # Registered: site pose × root's transform × the tank's own.
        pose = YARD["rotation"]
        want = add(YARD["position"], rotate(pose, add(ROOT_T, TANK_T)))
        await page.wait(placed_at(TANK, want), what=f"the tank at {want}")
        tank = await page.eval(f"sceneStream.worldPose({json.dumps(TANK)})")
        assert same_rotation(tank["rotation"], qmul(pose, ry(TANK_RY))), tank
        assert near((await page.eval("sceneStream.worldPose('yard')"))["position"], add(YARD["position"], rotate(pose, ROOT_T)))
        # The hall's anchor is not registered: it stays where it was.
        line = await page.eval(f"sceneStream.worldPose({json.dumps(LINE)})")
        assert near(line["position"], line_before["position"], 1e-6) and same_rotation(line["rotation"], line_before["rotation"]), line
        await page.wait("document.getElementById('anchor-status').textContent.startsWith('Anchors: 1 registered')",
                        what="the status line: one anchor")

        # Moved by an admin: follows.
        moved = {**YARD, "position": [-7.5, 1.25, 40]}
        put(site, "yard", moved)
        await page.wait(placed_at(TANK, add(moved["position"], rotate(pose, add(ROOT_T, TANK_T)))), what="the tank where the anchor moved")

        # Removed: back to its own transform, where it stood before.
        delete(site, "yard")
        await page.wait("sceneStream.anchors().length === 0", what="the anchor gone from the viewer")
        await page.wait(placed_at(TANK, before["position"], 1e-6), what="the tank back where it stood")
        assert same_rotation((await page.eval(f"sceneStream.worldPose({json.dumps(TANK)})"))["rotation"], ry(TANK_RY))
        assert await page.eval("window.notReloaded === true && sceneStream.connects === 1")
    browse(test)


def test_presence_is_sent_in_the_anchors_frame(site):
    """On a registered, rotated anchor a desktop's head still lands where its camera is, for another viewer."""
    hall = {"position": [5, 0, 3], "rotation": [0, math.sin(math.pi / 8), 0, math.cos(math.pi / 8)]}   # 45° about +Y
    put(site, "hall-a", hall)
    try:
        async def test(b):
            ada = await b.open(f"http://127.0.0.1:{site.port}/?user=ada")
            await ready(ada)
            await ada.wait("sceneStream.anchors().some(a => a.id === 'hall-a')", what="hall-a registered in ada's viewer")
            bob = await b.open(f"http://127.0.0.1:{site.port}/?user=bob")
            await ready(bob)
            cam = (await ada.eval("sceneStream.camera()"))["position"]
            heads = json.dumps([f"~presence.{a}/ada/head" for a in ("hall-a", "yard")])
            expr = (f"(() => {{ const w = {json.dumps(cam)}; return {heads}.some((id) => {{ const p = sceneStream.worldPosition(id); "
                    "return !!p && Math.max(...p.map((v, k) => Math.abs(v - w[k]))) <= 0.005; }); })()")
            await bob.wait(expr, what=f"ada's head where her camera is ({cam})")
            assert (await ada.eval("sceneStream.camera()"))["position"] == cam  # her camera held still meanwhile
        browse(test)
    finally:
        delete(site, "hall-a")


def test_without_webxr_anchors_the_status_says_so_and_nothing_throws(site):
    put(site, "yard", YARD)
    try:
        async def test(b):
            page = await b.open(f"http://127.0.0.1:{site.port}/?user=headless")
            await ready(page)
            await page.wait("sceneStream.xr().modes !== null", what="WebXR support asked")
            xr = await page.eval("sceneStream.xr()")
            # Headless Chromium has no XR device: no immersive mode, so no button and no anchors, said in one line.
            assert xr["modes"] == [] and xr["presenting"] is False and xr["restored"] == {}, xr
            assert xr["handles"] == {"yard": YARD["handles"]["webxr"]}, xr
            await page.wait("document.getElementById('anchor-status').textContent === "
                            "'Anchors: 1 registered · WebXR anchors not available in this browser'",
                            what="the status line")
            assert await page.eval("document.querySelectorAll('#vr-slot button').length") == 0
            # Pinning is refused politely, not thrown.
            assert await page.eval("sceneStream.pinAnchor('yard').then(() => 'pinned', (e) => e.message)") == \
                "persistent WebXR anchors are not available"
            assert await page.eval("sceneStream.errors") == []
        browse(test)
    finally:
        delete(site, "yard")


# A scripted WebXR device, installed before the page's scripts: it supports immersive VR, grants 'anchors' when asked,
# restores the persistent anchors it knows (handle → pose in its reference space) and rejects the others, and pins
# new ones. Enough of XRSession/XRFrame/XRWebGLLayer for three r111 to present (drawing into the page's canvas).
FAKE_XR = """(() => {
  const KNOWN = %s;
  const log = window.__xr = { requests: [], restored: [], created: [], ended: 0 };
  const mat = (p, q) => {
    const [x, y, z, w] = q;
    return new Float32Array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y), 0,
      2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x), 0,
      2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y), 0, p[0], p[1], p[2], 1]);
  };
  const IDENTITY = mat([0, 0, 0], [0, 0, 0, 1]);
  const PROJECTION = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1.0002, -1, 0, 0, -0.20002, 0]);
  class XRSpace {}
  class XRAnchor {
    constructor(pose) { this.anchorSpace = new XRSpace(); this.anchorSpace.pose = pose; }
    delete() { this.deleted = true; }
    requestPersistentHandle() { return Promise.resolve(`pinned-${log.created.length}`); }
  }
  class XRFrame {
    constructor(session) { this.session = session; this.trackedAnchors = new Set(session.anchors); }
    getViewerPose() {
      const view = { transform: { matrix: IDENTITY, inverse: { matrix: IDENTITY } }, projectionMatrix: PROJECTION };
      return { transform: view.transform, views: [view, view] };
    }
    getPose(space) { return space.pose ? { transform: { matrix: space.pose } } : null; }
    createAnchor(pose, space) {
      log.created.push({ position: pose.position, orientation: pose.orientation });
      const a = new XRAnchor(mat([pose.position.x, pose.position.y, pose.position.z], [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]));
      this.session.anchors.push(a);
      return Promise.resolve(a);
    }
  }
  class XRSession extends EventTarget {
    constructor(mode, init) {
      super();
      this.mode = mode;
      this.enabledFeatures = ['viewer', 'local', 'local-floor', ...((init.optionalFeatures || []).includes('anchors') ? ['anchors'] : [])];
      this.inputSources = []; this.renderState = {}; this.anchors = []; this.queue = []; this.scheduled = false;
    }
    updateRenderState(s) { Object.assign(this.renderState, s); }
    requestReferenceSpace() { return Promise.resolve(new XRSpace()); }
    requestAnimationFrame(cb) {
      this.queue.push(cb);
      if (!this.scheduled && !this.ended) {
        this.scheduled = true;
        window.requestAnimationFrame((t) => {
          this.scheduled = false;
          const q = this.queue; this.queue = [];
          if (this.ended) return;
          const frame = new XRFrame(this);
          for (const c of q) c(t, frame);
        });
      }
      return this.queue.length;
    }
    cancelAnimationFrame() {}
    restorePersistentAnchor(uuid) {
      log.restored.push(uuid);
      const k = KNOWN[uuid];
      if (!k) return Promise.reject(new DOMException('no such anchor', 'InvalidStateError'));
      const a = new XRAnchor(mat(k.position, k.rotation));
      this.anchors.push(a);
      return Promise.resolve(a);
    }
    end() { this.ended = true; log.ended++; this.dispatchEvent(new Event('end')); return Promise.resolve(); }
  }
  class XRWebGLLayer {
    constructor(session, gl) { this.gl = gl; this.framebuffer = null; }
    getViewport() { return { x: 0, y: 0, width: this.gl.drawingBufferWidth / 2, height: this.gl.drawingBufferHeight }; }
  }
  const xr = {
    isSessionSupported: (mode) => Promise.resolve(mode === 'immersive-vr'),
    requestSession: (mode, init = {}) => { log.requests.push({ mode, init }); return Promise.resolve(new XRSession(mode, init)); },
  };
  Object.defineProperty(Navigator.prototype, 'xr', { get: () => xr, configurable: true });
  Object.assign(window, { XRSession, XRFrame, XRAnchor, XRWebGLLayer, XRSpace,
    XRRigidTransform: class { constructor(position, orientation) { this.position = position; this.orientation = orientation; } } });
})();"""


def conj(q):
    return [-q[0], -q[1], -q[2], q[3]]


def test_a_webxr_anchor_resolved_by_its_handle_places_its_roots_and_the_others_through_the_site(site):
    """With a (scripted) XR device: the session asks for 'anchors', restores the yard by its `webxr` handle and
    stands the yard on it each frame, the hall (registered, its handle unknown here) placed from the yard through
    the site's poses; leaving the session puts everything back on the site's poses."""
    physical = {"position": [2, 0, -3], "rotation": ry(-60)}      # where the device finds the yard's anchor
    hall = {"position": [5, 0, 3], "rotation": ry(45), "handles": {"webxr": "not-known-here"}}
    put(site, "yard", YARD)
    put(site, "hall-a", hall)
    try:
        async def test(b):
            page = await b.open("about:blank")
            await b.call("Page.addScriptToEvaluateOnNewDocument",
                         {"source": FAKE_XR % json.dumps({YARD["handles"]["webxr"]: physical})}, session=page.session)
            await b.call("Page.navigate", {"url": f"http://127.0.0.1:{site.port}/?user=vr"}, session=page.session)
            await ready(page)
            await page.wait("sceneStream.anchors().length === 2", what="both anchors in the viewer")
            await page.wait("document.getElementById('anchor-status').textContent === "
                            "'Anchors: 2 registered · WebXR anchors resolved on entering VR'", what="the status before the session")
            assert await page.eval("[...document.querySelectorAll('#vr-slot button')].map(b => b.textContent)") == ["Enter VR"]
            line_t = [2, 0, 8]
            on_site = add(hall["position"], rotate(hall["rotation"], line_t))
            await page.wait(placed_at(LINE, on_site), what="the line on the hall's site pose")

            await page.click("#vr-slot button")
            await page.wait("sceneStream.xr().rendererPresenting && sceneStream.xr().restored.yard === 'resolved' "
                            "&& sceneStream.xr().restored['hall-a'] === 'failed'", what="the yard resolved, the hall not")
            log = await page.eval("window.__xr")
            assert [r["mode"] for r in log["requests"]] == ["immersive-vr"], log
            assert "anchors" in log["requests"][0]["init"]["optionalFeatures"], log
            assert sorted(log["restored"]) == sorted([YARD["handles"]["webxr"], "not-known-here"]), log
            assert await page.eval("document.querySelector('#vr-slot button').textContent") == "Exit VR"
            await page.wait("document.getElementById('anchor-status').textContent === "
                            "'Anchors: 2 registered · hall-a not found here · resolved yard'", what="the status in the session")

            # The yard on the device's anchor: its pose × root × tank.
            xr_q = physical["rotation"]
            want = add(physical["position"], rotate(xr_q, add(ROOT_T, TANK_T)))
            await page.wait(placed_at(TANK, want), what=f"the tank on the resolved anchor at {want}")
            assert same_rotation((await page.eval(f"sceneStream.worldPose({json.dumps(TANK)})"))["rotation"], qmul(xr_q, ry(TANK_RY)))
            # The hall from the yard through the site: resolved × site(yard)⁻¹ × site(hall) × line.
            in_yard = rotate(conj(YARD["rotation"]), sub(on_site, YARD["position"]))
            await page.wait(placed_at(LINE, add(physical["position"], rotate(xr_q, in_yard))), what="the hall placed through the site's poses")

            # Pinning: a new anchor where the yard is drawn, its persistent handle returned.
            assert await page.eval("sceneStream.pinAnchor('yard')") == "pinned-1"
            created = (await page.eval("window.__xr.created"))[0]
            assert near([created["position"][k] for k in "xyz"], physical["position"], 1e-5), created
            assert same_rotation([created["orientation"][k] for k in "xyzw"], xr_q), created

            # Leaving the session: back on the site's poses.
            await page.click("#vr-slot button")
            await page.wait("!sceneStream.xr().presenting && window.__xr.ended === 1", what="the session ended")
            assert await page.eval("sceneStream.xr().rendererPresenting") is False  # three.js told, too
            await page.wait(placed_at(TANK, add(YARD["position"], rotate(YARD["rotation"], add(ROOT_T, TANK_T)))), what="the tank on the site pose again")
            await page.wait(placed_at(LINE, on_site), what="the line on the hall's site pose again")
            assert await page.eval("document.querySelector('#vr-slot button').textContent") == "Enter VR"
            assert await page.eval("sceneStream.errors") == []
        browse(test)
    finally:
        delete(site, "yard")
        delete(site, "hall-a")
