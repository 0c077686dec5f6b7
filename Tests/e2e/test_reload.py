"""Live reload of a plant's files while a client streams, in a copy of the demo plant: bindings, rules and the scene
changed on disk or saved over HTTP (PUT /api/plant/FILE) reach the client as ordinary deltas — no keyframe, no
restart; a broken file is refused with its reason and the running plant kept; only admins with every zone (or, in
open mode, this machine) may write."""
import asyncio
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import scenestream_wire as sw
from conftest import Server
from device import Device
from test_ingest import label, metric, post
from test_security import SECRET, jwt

ROOT = Path(__file__).resolve().parents[2]
PRESS = "hall-a/line-01/press-01"
TEMP = PRESS + "/temp"


def plant(tmp_path):
    dst = tmp_path / "plant"
    shutil.copytree(ROOT / "Assets" / "plants" / "demo", dst)
    return dst


def start(tmp_path, dst, **extra):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"simulator": False, "plant": str(dst), "data": str(tmp_path / "data"),
                               "ingestToken": "t0ken", "plantWatchMs": 200, **extra}))
    return Server("--config", str(cfg))


def request(server, method, path, body=None, token=None, headers=None):
    """An HTTP request of any method; `body` bytes or JSON. Returns (status, body) whatever the status."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def with_temp_format(dst, fmt):
    """The demo plant's bindings with the press temperature label's format replaced."""
    b = json.loads((ROOT / "Assets" / "plants" / "demo" / "bindings.json").read_text())
    for x in b["bindings"]:
        if x["node"] == "{twin}/temp":
            x["map"]["format"] = fmt
    return b


def paths(d):
    """The full ids of every node in the replica."""
    from device import path
    return {path(d.replica, i) for i in d.replica.nodes}


def reloads(server, result):
    return metric(server, f'scenestream_plant_reloads_total{{result="{result}"}}')


def keyframes(d):
    return sum(1 for t, *_ in d.order if t == "keyframe")


def test_plant_files_changed_on_disk_and_over_http_apply_live(tmp_path):
    dst = plant(tmp_path)
    server = start(tmp_path, dst)
    try:
        async def run():
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            assert post(server, {"updates": [{"twin": PRESS, "property": "temperature", "value": 71}]})[0] == 200
            await d.wait(lambda: label(d, TEMP) == "71 °C", what="the first value")
            k0 = keyframes(d)

            # A bindings file edited on disk: the label follows, as a delta.
            (dst / "bindings.json").write_text(json.dumps(with_temp_format(dst, "{value} degC")))
            await d.wait(lambda: label(d, TEMP) == "71 degC", what="the edited binding applied")
            assert keyframes(d) == k0

            # A broken file: refused with its reason, the running plant kept (and still taking values).
            good = (dst / "bindings.json").read_text()
            (dst / "bindings.json").write_text('{"bindings": [{"twins": "*", "node": "{twin}"')
            await d.wait(lambda: reloads(server, "refused") >= 1, what="the broken file refused")
            assert "bindings.json" in server.log_tail() and "plant files refused" in server.log_tail()
            assert post(server, {"updates": [{"twin": PRESS, "property": "temperature", "value": 73}]})[0] == 200
            await d.wait(lambda: label(d, TEMP) == "73 degC", what="the running plant kept")

            # Saved over HTTP (open mode, from this machine): checked, written atomically, applied — once: the
            # watcher then sees files that were applied already.
            applied, unchanged = reloads(server, "applied"), reloads(server, "unchanged")
            status, body = request(server, "PUT", "/api/plant/bindings.json", with_temp_format(dst, "{value} C"))
            assert status == 200 and json.loads(body)["applied"] is True, body
            await d.wait(lambda: reloads(server, "unchanged") == unchanged + 1, what="the watcher seeing the written file")
            assert reloads(server, "applied") == applied + 1
            await d.wait(lambda: label(d, TEMP) == "73 C", what="the saved binding applied")
            assert json.loads((dst / "bindings.json").read_text()) == with_temp_format(dst, "{value} C")
            assert json.loads(request(server, "GET", "/api/plant/bindings.json")[1]) == with_temp_format(dst, "{value} C")
            assert good != (dst / "bindings.json").read_text()

            # Open mode takes writes from this machine only — and not from a page of another site that reaches it
            # (DNS rebinding: the peer is 127.0.0.1, but the Host or the Origin names the other site).
            rebound = with_temp_format(dst, "{value} pwned")
            for h in ({"Host": f"evil.example:{server.port}"}, {"Origin": "http://evil.example"}, {"Origin": "null"}):
                status, text = request(server, "PUT", "/api/plant/bindings.json", rebound, headers=h)
                assert status == 403 and b"this machine only" in text, (h, status, text)
            assert request(server, "PUT", "/api/anchors/hall-a", {"position": [0, 0, 0]}, headers={"Host": "evil.example"})[0] == 403
            assert "pwned" not in (dst / "bindings.json").read_text()
            assert request(server, "PUT", "/api/plant/bindings.json", with_temp_format(dst, "{value} C"),
                           headers={"Host": f"localhost:{server.port}", "Origin": f"http://localhost:{server.port}"})[0] == 200

            # A PUT that says which version it edits (If-Match, the ETag of its GET) is refused when the file changed
            # since: nobody's edit is overwritten unseen.
            req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/plant/rules.json")
            with urllib.request.urlopen(req, timeout=10) as r:
                etag, rules_then = r.headers["ETag"], json.loads(r.read())
            assert etag and etag.startswith('"'), etag
            rules_then["rules"].append({"id": "mine", "twins": "*", "property": "x", "above": 1})
            other = json.loads((dst / "rules.json").read_text())
            other["rules"].append({"id": "theirs", "twins": "*", "property": "y", "above": 1})
            (dst / "rules.json").write_text(json.dumps(other))  # someone else's edit, in between
            status, text = request(server, "PUT", "/api/plant/rules.json", rules_then, headers={"If-Match": etag})
            assert status == 412 and b"changed since you read it" in text, (status, text)
            assert "theirs" in (dst / "rules.json").read_text() and "mine" not in (dst / "rules.json").read_text()

            # A bad body over HTTP: 400 with the file, place and reason; nothing written.
            before = (dst / "bindings.json").read_bytes()
            status, body = request(server, "PUT", "/api/plant/bindings.json",
                                   {"bindings": [{"twins": "*", "property": "p", "node": "{twin}", "field": "colour", "map": {"kind": "linear"}}]})
            assert status == 400 and b"bindings.json" in body and b"bindings[0]" in body and b"nothing was written" in body, body
            assert (dst / "bindings.json").read_bytes() == before
            # Only bindings and rules are written over HTTP; unknown files are not found.
            assert request(server, "PUT", "/api/plant/scene.json", b"{}")[0] == 405
            config = (tmp_path / "config.json").read_bytes()
            assert request(server, "PUT", "/api/plant/../config.json", b"{}")[0] in (400, 404, 405)
            assert request(server, "PUT", "/api/plant/%2e%2e/config.json", b"{}")[0] in (400, 404, 405)
            assert (tmp_path / "config.json").read_bytes() == config

            # A rule saved over HTTP raises an alert on the current value; removed again, it clears.
            rules = json.loads((dst / "rules.json").read_text())
            rules["rules"].append({"id": "warm", "twins": "*/*/press-*", "property": "temperature", "above": 72,
                                   "severity": "warning", "message": "{twin} is warm"})
            assert request(server, "PUT", "/api/plant/rules.json", rules)[0] == 200
            assert [a["id"] for a in server.json(f"/api/twin?id={PRESS}")["alerts"]] == [f"warm@{PRESS}"]
            rules["rules"].pop()
            assert request(server, "PUT", "/api/plant/rules.json", rules)[0] == 200
            assert server.json(f"/api/twin?id={PRESS}")["alerts"] == []

            # A note pinned to the press's light (the demo identity may annotate).
            await d.send(sw.annotate(1, d.index_of(PRESS + "/light"), [0, 300, 0], "check the lamp"))
            await d.wait(lambda: any("/~note-" in (p or "") and p.startswith(PRESS + "/light/") for p in paths(d)), what="the note's pin")
            note = next(p for p in paths(d) if "/~note-" in p)

            # The scene edited on disk: a node added, one removed, one moved — deltas, not a keyframe.
            original = (dst / "scene.json").read_text()
            scene = json.loads(original)
            scene["nodes"] = [n for n in scene["nodes"] if n["id"] != PRESS + "/light"]
            scene["nodes"].append({"id": PRESS + "/sign", "t": [0, 5, 0], "label": "Press 1 (new)", "layer": "labels"})
            for n in scene["nodes"]:
                if n["id"] == PRESS + "/ram":
                    n["t"] = [0, 2.0, 0]
            (dst / "scene.json").write_text(json.dumps(scene))
            await d.wait(lambda: label(d, PRESS + "/sign") == "Press 1 (new)" and d.index_of(PRESS + "/light") is None,
                         what="the scene's added and removed nodes")
            ram = d.replica.nodes[d.index_of(PRESS + "/ram")]
            units = scene.get("quantization", {}).get("positionUnitsPerMetre", 1000)
            assert abs(ram["translation"][1] / units - 2.0) < 1e-3, ram
            assert label(d, TEMP) == "73 C"  # bound values stay through a scene change
            assert note not in paths(d)  # its node went, and the pin with it
            # The light comes back: so does the note's pin (the note was kept).
            (dst / "scene.json").write_text(original)
            await d.wait(lambda: note in paths(d) and d.index_of(PRESS + "/sign") is None, what="the light and its note back")
            assert keyframes(d) == k0
            assert reloads(server, "applied") >= 4
            await d.close()

        asyncio.run(run())
    finally:
        server.stop()


def test_only_admins_with_every_zone_write_plant_files(tmp_path):
    dst = plant(tmp_path)
    server = start(tmp_path, dst, auth={"hs256Secret": SECRET})
    try:
        body = with_temp_format(dst, "{value} K")
        assert request(server, "PUT", "/api/plant/bindings.json", body)[0] == 401
        assert request(server, "PUT", "/api/plant/bindings.json", body, jwt("op", role="operator"))[0] == 403
        assert request(server, "GET", "/api/plant/bindings.json", token=jwt("op", role="operator"))[0] == 403
        status, text = request(server, "PUT", "/api/plant/bindings.json", body, jwt("za", role="admin", zones=["hall-a-line-01"]))
        assert status == 403 and b"every zone" in text, text
        assert json.loads((dst / "bindings.json").read_text()) != body
        status, text = request(server, "PUT", "/api/plant/bindings.json", body, jwt("boss", role="admin"))
        assert status == 200, text
        assert json.loads((dst / "bindings.json").read_text()) == body
        # The plant files under /assets/ stay admin-only too.
        assert request(server, "GET", "/assets/plants/demo/bindings.json", token=jwt("op", role="operator"))[0] == 403
    finally:
        server.stop()
