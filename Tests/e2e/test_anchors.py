"""Spatial anchors across platforms: an admin registers a site anchor's pose and platform handles over HTTP; others
are refused; the registry survives a restart; subscribed clients of protocol version 3 get it in an `anchors`
message on subscribe and on every change (a client limited to zones only the anchors of the roots it sees), and
older clients are not sent what they cannot read."""
import asyncio
import json
import shutil
from pathlib import Path

import scenestream_wire as sw
from conftest import Server
from device import Device
from test_reload import request
from test_security import SECRET, jwt

ROOT = Path(__file__).resolve().parents[2]
ADMIN = jwt("boss", role="admin", exp_in=3600)
OPERATOR = jwt("op", role="operator", exp_in=3600)
LINE_OPERATOR = jwt("lineop", role="operator", zones=["hall-a-line-01"], exp_in=3600)
LINE_ADMIN = jwt("lineadmin", role="admin", zones=["hall-a-line-01"], exp_in=3600)
YARD = {"position": [12.5, 0, -3.25], "rotation": [0, 0.7071068, 0, 0.7071068],
        "handles": {"openxr": "6f1c2b9e-3d4a-4b8e-9c21-0a5f7e3d2c10", "webxr": "b1946ac9", "marker": "qr:yard-gate"}}


def plant(tmp_path):
    """The demo plant with a second site anchor, `yard`, and a root on it in zone `yard`."""
    dst = tmp_path / "plant"
    shutil.copytree(ROOT / "Assets" / "plants" / "demo", dst)
    scene = json.loads((dst / "scene.json").read_text())
    scene["anchors"].append({"id": "yard", "description": "Marker on the yard gate"})
    scene["nodes"] += [{"id": "yard", "anchor": "yard", "zone": "yard"}, {"id": "yard/silo", "t": [0, 0, 2], "label": "Silo"}]
    (dst / "scene.json").write_text(json.dumps(scene))
    return dst


def start(tmp_path):
    cfg = tmp_path / "config.json"
    if not cfg.exists():
        cfg.write_text(json.dumps({"simulator": False, "plant": str(plant(tmp_path)), "data": str(tmp_path / "data"),
                                   "auth": {"hs256Secret": SECRET}}))
    return Server("--config", str(cfg))


def ids(anchors):
    return sorted(a["id"] for a in anchors or [])


def test_anchors_set_by_admins_survive_a_restart_and_reach_subscribed_clients(tmp_path):
    server = start(tmp_path)
    try:
        async def run():
            headset = await Device(server.url, ADMIN, 1, "headset", max_version=3).open()
            await headset.wait(lambda: headset.anchors == [], what="an empty anchors message after subscribe")
            assert headset.version == 3
            old = await Device(server.url, OPERATOR, 2, "old", max_version=2).open()
            await old.wait(lambda: old.replica.version is not None)
            line = await Device(server.url, LINE_OPERATOR, 1, "line", max_version=3).open()
            await line.wait(lambda: line.anchors == [], what="the zone-limited client's anchors")

            # Who may set them: admins with every zone; everyone else is refused, with the reason.
            assert request(server, "PUT", "/api/anchors/yard", YARD)[0] == 401
            assert request(server, "PUT", "/api/anchors/yard", YARD, OPERATOR)[0] == 403
            status, text = request(server, "PUT", "/api/anchors/yard", YARD, LINE_ADMIN)
            assert status == 403 and b"whole site" in text, text
            # Bad bodies and unknown anchors: refused with what is wrong.
            status, text = request(server, "PUT", "/api/anchors/nowhere", YARD, ADMIN)
            assert status == 404 and b"declares no anchor 'nowhere'" in text and b"hall-a, yard" in text, text
            status, text = request(server, "PUT", "/api/anchors/yard", {"position": [1, 2]}, ADMIN)
            assert status == 400 and b"position" in text, text
            status, text = request(server, "PUT", "/api/anchors/yard", dict(YARD, colour="red"), ADMIN)
            assert status == 400 and b"colour: unknown key" in text, text
            status, text = request(server, "PUT", "/api/anchors/yard", dict(YARD, handles={"Open XR": "x"}), ADMIN)
            assert status == 400 and b"handles.Open XR" in text, text
            assert json.loads(request(server, "GET", "/api/anchors", token=OPERATOR)[1])["anchors"] == [
                {"id": "hall-a", "registered": False, "description": "Floor marker at the south-west corner of hall-a; x east, y up, z south"},
                {"id": "yard", "registered": False, "description": "Marker on the yard gate"}]

            # An admin sets two: stored before the answer, sent to version-3 clients as their view allows.
            status, text = request(server, "PUT", "/api/anchors/yard", YARD, ADMIN)
            assert status == 200 and json.loads(text)["stored"] is True, text
            stored = json.loads((tmp_path / "data" / "anchors-demo.json").read_text())["anchors"]
            assert [(a["id"], a["handles"]) for a in stored] == [("yard", YARD["handles"])]  # on disk before the answer
            assert request(server, "PUT", "/api/anchors/hall-a", {"position": [0, 0, 0], "handles": {"visionos": "8A3F0C52"}}, ADMIN)[0] == 200
            await headset.wait(lambda: ids(headset.anchors) == ["hall-a", "yard"], what="both anchors at the headset")
            yard = next(a for a in headset.anchors if a["id"] == "yard")
            assert yard["position"] == [12500, 0, -3250] and yard["rotation"] == [0, 707107, 0, 707107], yard
            assert yard["handles"] == [{"platform": "marker", "value": "qr:yard-gate"}, {"platform": "openxr", "value": YARD["handles"]["openxr"]},
                                       {"platform": "webxr", "value": "b1946ac9"}]
            await line.wait(lambda: ids(line.anchors) == ["hall-a"], what="the line client: only its roots' anchor")
            # Everything sent to the version-2 client before its pong has arrived: none of it was an anchors message.
            await old.send(sw.ping(77))
            await old.wait(lambda: any(m["type"] == "pong" and m["nonce"] == 77 for m in old.messages), what="the old client's pong")
            assert not any(m["type"] == "anchors" for m in old.messages), "a version-2 client was sent a version-3 message"
            assert ids(json.loads(request(server, "GET", "/api/anchors", token=LINE_OPERATOR)[1])["anchors"]) == ["hall-a"]
            listed = json.loads(request(server, "GET", "/api/anchors", token=OPERATOR)[1])["anchors"]
            assert [a["registered"] for a in listed] == [True, True] and listed[1]["updatedBy"] == "boss"

            # Removed: the clients hear of it.
            assert request(server, "DELETE", "/api/anchors/hall-a", token=ADMIN)[0] == 200
            assert request(server, "DELETE", "/api/anchors/hall-a", token=ADMIN)[0] == 404
            await headset.wait(lambda: ids(headset.anchors) == ["yard"], what="the removal at the headset")
            await line.wait(lambda: line.anchors == [], what="the removal at the line client")
            for d in (headset, old, line):
                await d.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0

    # A restart keeps them (the data folder's anchors file).
    assert json.loads((tmp_path / "data" / "anchors-demo.json").read_text())["anchors"][0]["id"] == "yard"
    server = start(tmp_path)
    try:
        listed = json.loads(request(server, "GET", "/api/anchors", token=OPERATOR)[1])["anchors"]
        assert [(a["id"], a["registered"]) for a in listed] == [("hall-a", False), ("yard", True)]
        assert listed[1]["handles"] == YARD["handles"] and listed[1]["position"] == YARD["position"]

        async def again():
            d = await Device(server.url, OPERATOR, 1, "after", max_version=3).open()
            await d.wait(lambda: ids(d.anchors) == ["yard"], what="the stored anchor after a restart")
            await d.close()

        asyncio.run(again())
    finally:
        assert server.stop() == 0
