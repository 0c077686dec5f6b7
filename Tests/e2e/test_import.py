"""`scenestream import` on a glTF written by another tool — trimesh 4.5.3 from PyPI (its own GLB exporter) — then
streamed: the replica's transforms equal the file's within quantization, repeated meshes share one model file
(served to anyone, like /assets/models, while the plant's other files stay admin-only), and a broken file is
refused with its path and reason."""
import asyncio
import json
import math
import subprocess
import urllib.error
import urllib.request

import numpy as np
import trimesh
import trimesh.transformations as tf

from conftest import Server, binary
from device import Device
from test_security import SECRET, jwt

M = 2 ** 11 - 1  # rotationBits 12


def quaternion(rot):
    """The replica's smallest-three rotation [largest, a, b, c] as (x, y, z, w) (Protocol/SPEC.md §6.5)."""
    largest, *abc = rot
    comps = [c / (M * math.sqrt(2)) for c in abc]
    dropped = math.sqrt(max(0.0, 1 - sum(c * c for c in comps)))
    comps.insert(largest, dropped)
    return comps


def make_scene(path):
    """A line with three identical boxes (one geometry, three nodes), a rotated and scaled tank, and a robot."""
    box = trimesh.creation.box(extents=[1.0, 2.0, 0.5])
    tank = trimesh.creation.cylinder(radius=0.8, height=2.0, sections=24)
    robot = trimesh.creation.icosphere(subdivisions=1, radius=0.3)
    s = trimesh.Scene(base_frame="plant")
    s.graph.update(frame_to="line", frame_from="plant", matrix=tf.translation_matrix([10.0, 0.0, 4.0]))
    for k, x in enumerate([0.0, 1.5, 3.0]):
        s.add_geometry(box, geom_name="box", node_name=f"press {k + 1}", parent_node_name="line",
                       transform=tf.translation_matrix([x, 1.0, 0.0]))
    t = tf.concatenate_matrices(tf.translation_matrix([2.0, 1.0, -3.0]), tf.rotation_matrix(math.radians(30), [0, 1, 0]),
                                np.diag([1.5, 1.5, 1.5, 1.0]))
    s.add_geometry(tank, geom_name="tank", node_name="tank", parent_node_name="line", transform=t)
    s.add_geometry(robot, geom_name="robot", node_name="robot", parent_node_name="plant",
                   transform=tf.concatenate_matrices(tf.translation_matrix([-4.0, 0.5, 6.0]), tf.rotation_matrix(math.radians(-75), [1, 0, 0])))
    with open(path, "wb") as f:
        f.write(s.export(file_type="glb"))
    return s


def run_import(*args):
    return subprocess.run([binary(), "import", *args], capture_output=True, text=True, timeout=120)


def test_a_trimesh_glb_imports_streams_and_keeps_its_transforms(tmp_path):
    assets = tmp_path / "Assets"
    (assets / "plants").mkdir(parents=True)
    src = tmp_path / "plant.glb"
    scene = make_scene(src)
    out = assets / "plants" / "trim"
    r = run_import(str(src), "--out", str(out), "--assets", str(assets), "--anchor", "plant=hall-marker")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "model files" in r.stdout
    report = json.loads((out / "import-report.json").read_text())
    spec = json.loads((out / "scene.json").read_text())
    nodes = {n["id"]: n for n in spec["nodes"]}
    assert nodes["plant"]["anchor"] == "hall-marker"
    presses = [i for i in nodes if i.startswith("plant/line/press")]
    assert len(presses) == 3
    # Repeated meshes share one model file; the tank and the robot have their own.
    assert len({nodes[i]["asset"] for i in presses}) == 1
    assert report["modelsWritten"] == 3 and len(list((out / "models").iterdir())) == 3

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"simulator": False, "assets": str(assets), "plant": str(out), "data": str(tmp_path / "data")}))
    server = Server("--config", str(cfg))
    try:
        async def run():
            d = await Device(server.url, "demo:ops", 2, "ops", scene="trim").open()
            await d.wait(lambda: d.replica.version is not None and d.index_of("plant/robot") is not None)
            # Every node's local transform against the file's (trimesh's graph), within quantization.
            for node_id in nodes:
                name = node_id.split("/")[-1]
                parent = node_id.rsplit("/", 1)[0] if "/" in node_id else None
                frame = {"press-1": "press 1", "press-2": "press 2", "press-3": "press 3"}.get(name, name)
                pframe = {"plant/line": "line", "plant": "plant"}.get(parent, None)
                if pframe is None:
                    continue  # the root: its frame is the anchor's
                local = np.linalg.inv(scene.graph.get(pframe)[0]) @ scene.graph.get(frame)[0]
                scale, _, angles, trans, _ = tf.decompose_matrix(local)
                q = tf.quaternion_from_matrix(local / np.array([scale[0], scale[1], scale[2], 1.0]))  # (w, x, y, z)
                got = d.replica.nodes[d.index_of(node_id)]
                assert all(abs(got["translation"][k] / 1000 - trans[k]) <= 0.0006 for k in range(3)), (node_id, got["translation"], trans)
                assert all(abs(got["scale"][k] / 1000 - scale[k]) <= 0.0006 for k in range(3)), (node_id, got["scale"], scale)
                x, y, z, w = quaternion(got["rotation"])
                dot = abs(x * q[1] + y * q[2] + z * q[3] + w * q[0])
                assert dot > 1 - 1e-5, (node_id, got["rotation"], q)
                assert got["asset"] == nodes[node_id].get("asset", "")
            await d.close()

        asyncio.run(run())
        # The model a node names is served (GLB magic) from /assets/.
        status, body = server.http("/assets/" + nodes["plant/line/press-1"]["asset"])
        assert status == 200 and body[:4] == b"glTF"
    finally:
        server.stop()

    # With tokens required: models stay open (the viewer loads them without a header), the plant's files do not.
    cfg.write_text(json.dumps({"simulator": False, "assets": str(assets), "plant": str(out), "data": str(tmp_path / "data2"),
                               "auth": {"hs256Secret": SECRET}}))
    guarded = Server("--config", str(cfg))
    try:
        model = "/assets/" + nodes["plant/line/tank"]["asset"]
        assert guarded.http(model)[0] == 200
        for path in ["/assets/plants/trim/scene.json", "/assets/plants/trim/models/../scene.json", "/assets/plants/trim/models/%2e%2e/scene.json"]:
            try:
                status = guarded.http(path)[0]
            except urllib.error.HTTPError as e:
                status = e.code
            assert status in (401, 404), (path, status)
        assert guarded.http("/assets/plants/trim/scene.json", token=jwt("boss", role="admin"))[0] == 200
    finally:
        guarded.stop()


def test_broken_files_are_refused_with_path_and_reason(tmp_path):
    assets = tmp_path / "Assets"
    (assets / "plants").mkdir(parents=True)
    src = tmp_path / "plant.glb"
    make_scene(src)
    data = bytearray(src.read_bytes())
    # A file cut short is refused by its header...
    cut = tmp_path / "cut.glb"
    cut.write_bytes(bytes(data[:-200]))
    r = run_import(str(cut), "--out", str(assets / "plants" / "c"), "--assets", str(assets))
    assert r.returncode != 0 and "cut.glb: GLB header: says" in r.stderr, r.stderr
    # ... and one whose binary chunk was cut consistently (headers fixed up) by its buffer: it says more bytes than
    # there are.
    jl = int.from_bytes(data[12:16], "little")
    bl = int.from_bytes(data[20 + jl:24 + jl], "little")
    data = data[:-200]
    data[8:12] = len(data).to_bytes(4, "little")
    data[20 + jl:24 + jl] = (bl - 200).to_bytes(4, "little")
    broken = tmp_path / "broken.glb"
    broken.write_bytes(bytes(data))
    r = run_import(str(broken), "--out", str(assets / "plants" / "b"), "--assets", str(assets))
    assert r.returncode != 0 and "broken.glb: $.buffers[0].byteLength: says" in r.stderr, r.stderr
    assert not (assets / "plants" / "b" / "scene.json").exists()
    # A required extension we do not read.
    gltf = tmp_path / "draco.gltf"
    gltf.write_text(json.dumps({"asset": {"version": "2.0"}, "extensionsRequired": ["KHR_draco_mesh_compression"], "nodes": [{"name": "a"}]}))
    r = run_import(str(gltf), "--out", str(assets / "plants" / "d"), "--assets", str(assets))
    assert r.returncode != 0 and "$.extensionsRequired[0]" in r.stderr and "KHR_draco_mesh_compression" in r.stderr, r.stderr
    # Outside the Assets folder the viewer could not load the models: refused before anything is written.
    r = run_import(str(src), "--out", str(tmp_path / "elsewhere"), "--assets", str(assets))
    assert r.returncode != 0 and "not under --assets" in r.stderr
