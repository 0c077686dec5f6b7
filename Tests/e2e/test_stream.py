"""End to end: Python `websockets` (an independent client) streams from the real server and converges."""
import asyncio
import json
import time

from websockets.asyncio.client import connect

import scenestream_wire as sw


async def stream(url, seconds, scene="demo", rate=60):
    async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
        # The server must decline permessage-deflate (compression is in the frame format).
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        assert ws.subprotocol == "scenestream.v1"
        await ws.send(sw.hello())
        welcome = sw.decode_server(await ws.recv())
        assert welcome["type"] == "welcome" and scene in welcome["scenes"]
        await ws.send(sw.subscribe(scene, rate=rate))
        replica, frames, keyframes = sw.Replica(), 0, 0
        end = time.time() + seconds
        while time.time() < end:
            m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
            if m["type"] in ("keyframe", "delta"):
                replica.apply(m)
                frames += 1
                keyframes += m["type"] == "keyframe"
                await ws.send(sw.ack(m["version"]))
        return ws, replica, frames, keyframes


def test_python_client_streams_and_matches_server(server):
    async def run():
        async with connect(server.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello())
            assert sw.decode_server(await ws.recv())["type"] == "welcome"
            await ws.send(sw.subscribe("demo", rate=60))
            replica, frames, keyframes = sw.Replica(), 0, 0
            versions = []
            end = time.time() + 2
            while time.time() < end:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
                    frames += 1
                    keyframes += m["type"] == "keyframe"
                    versions.append(m["version"])
                    await ws.send(sw.ack(m["version"]))
            assert keyframes == 1 and frames > 20, (keyframes, frames)
            assert versions == sorted(versions)
            # Freeze the plant, then the replica must equal the server's scene exactly.
            status, _ = server.http("/api/simulator", json.dumps({"running": False}).encode())
            assert status == 200
            time.sleep(0.2)
            snap = server.json("/api/scene")
            target = int(snap["version"])
            while replica.version < target:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
            assert replica.version == target
            want = {e["index"]: e for e in snap["entered"]}
            got = replica.as_description()
            assert sorted(got) == sorted(want)
            for i, e in want.items():
                assert got[i] == e, (i, got[i], e)
            server.http("/api/simulator", json.dumps({"running": True}).encode())

    asyncio.run(run())


def test_ping_pong_and_unknown_scene(server):
    async def run():
        async with connect(server.url, subprotocols=["scenestream.v1"]) as ws:
            await ws.send(sw.hello())
            await ws.recv()
            await ws.send(sw.ping(12345))
            assert sw.decode_server(await ws.recv()) ["nonce"] == 12345
            await ws.send(sw.subscribe("no-such-scene", request_id=7))
            err = sw.decode_server(await ws.recv())
            assert err == {"type": "error", "code": 4, "requestId": 7, "message": "no scene 'no-such-scene'"}

    asyncio.run(run())


def test_http_endpoints(server):
    # /healthz says only that the server is up; the details are at /api/status (open here: no auth configured).
    assert server.json("/healthz") == {"status": "ok"}
    health = server.json("/api/status")
    assert health["status"] == "ok" and health["scene"] == "demo"
    assert "none" in health["authentication"]
    status, metrics = server.http("/metrics")
    text = metrics.decode()
    assert status == 200 and "scenestream_frames_sent_total" in text and "scenestream_clients" in text
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/assets/models/robot-base.gltf") as r:
        assert r.headers["Content-Type"].startswith("model/gltf+json")
        assert json.loads(r.read())["asset"]["version"] == "2.0"
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/") as r:
        assert r.headers["Content-Type"].startswith("text/html")
