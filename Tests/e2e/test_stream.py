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


def test_a_client_that_cannot_apply_a_delta_asks_for_a_keyframe_and_gets_one(server):
    """§7.4: requestKeyframe makes the next frame a keyframe of the same interest (subscribe again would give a
    delta against the frame the client could not apply). At most one a second (three in a burst); before
    subscribe it is error 17."""
    async def frames_until_keyframe(ws, replica):
        dropped = 0
        while True:
            m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
            if m["type"] == "keyframe":
                replica.apply(m)
                await ws.send(sw.ack(m["version"]))
                return m, dropped
            if m["type"] == "delta":
                dropped += 1  # sent before the request: the client drops it, as one that could not apply would

    async def next_frame(ws):
        while True:
            m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
            if m["type"] in ("keyframe", "delta"):
                return m

    async def run():
        async with connect(server.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello())
            await ws.recv()
            await ws.send(sw.request_keyframe(5))
            err = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
            assert (err["type"], err["code"], err["requestId"]) == ("error", 17, 5), err
            await ws.send(sw.subscribe("demo", rate=30, layers=["structure", "equipment"]))
            replica = sw.Replica()
            first = await next_frame(ws)
            assert first["type"] == "keyframe"
            replica.apply(first)
            # A few deltas applied but not acked, as a client that then fails on one would do.
            for _ in range(3):
                m = await next_frame(ws)
                assert m["type"] == "delta"
                replica.apply(m)
            stuck = replica.version
            await ws.send(sw.request_keyframe(6))
            key, dropped = await frames_until_keyframe(ws, sw.Replica())
            assert key["version"] >= stuck, (key["version"], stuck)  # a keyframe of the version now
            # Of the same interest: the keyframe holds exactly what a fresh subscriber with that interest gets.
            layers = {n.get("layer", "") for _, n in key["entered"]}
            assert layers <= {"structure", "equipment", ""}, layers
            assert len(key["entered"]) == len(first["entered"]), (len(key["entered"]), len(first["entered"]))
            # Deltas continue from the keyframe.
            fresh = sw.Replica()
            fresh.apply(key)
            m = await next_frame(ws)
            assert m["type"] == "delta" and m["base"] == key["version"]
            fresh.apply(m)
            # The limit: six at once. At most three are taken (a burst of three, one used just now); the rest are
            # refused with error 7 and their own request ids.
            for k in range(7, 13):
                await ws.send(sw.request_keyframe(k))
            await ws.send(sw.ping(99))
            refused = []
            while True:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] == "error":
                    assert m["code"] == 7, m
                    refused.append(m["requestId"])
                if m["type"] == "pong":
                    break
            assert len(refused) >= 3 and refused == sorted(refused) and refused[-1] == 12, refused
            return 1 + 6 - len(refused)

    before = requested_keyframes(server)
    taken = asyncio.run(run())
    # Request 6 and those the limit let through; 5 (not subscribed) and the refused ones are not counted.
    assert requested_keyframes(server) - before == taken


def requested_keyframes(server):
    for line in server.http("/metrics")[1].decode().splitlines():
        if line.startswith("scenestream_keyframes_requested_total"):
            return float(line.split()[-1])
    return 0.0


def test_version_1_and_version_2_clients_in_one_group_each_get_their_own_encoding_and_converge(server):
    """A hello offering 1…2 gets version 2 (the ack window in welcome, range-coded frames); a version-1 hello is
    still served version 1. Side by side on one scene, both replicas end exactly equal to the server's."""
    async def client(max_version):
        ws = await connect(server.url, subprotocols=["scenestream.v1"], max_size=None)
        await ws.send(sw.hello(max_version=max_version))
        w = sw.decode_server(await ws.recv())
        await ws.send(sw.subscribe("demo", rate=30))
        return ws, w

    async def pump(ws, version, replica, flags, until):
        while replica.version is None or replica.version < until():
            data = await asyncio.wait_for(ws.recv(), 5)
            m = sw.decode_server(data, version)
            if m["type"] in ("keyframe", "delta"):
                replica.apply(m)
                flags.add(data[1])
                await ws.send(sw.ack(m["version"]))

    async def run():
        (old, w1), (new, w2) = await client(1), await client(2)
        assert w1["version"] == 1 and "ackWindow" not in w1
        assert w2["version"] == 2 and w2["ackWindow"] == 8
        r1, r2, f1, f2 = sw.Replica(), sw.Replica(), set(), set()
        start = int(server.json("/api/scene")["version"])
        await asyncio.gather(pump(old, 1, r1, f1, lambda: start + 60), pump(new, 2, r2, f2, lambda: start + 60))
        assert f2 == {0}, f2  # range-coded, never deflated
        assert 1 in f1, f1  # version 1 frames are deflated when that helps
        server.http("/api/simulator", json.dumps({"running": False}).encode())
        try:
            time.sleep(0.2)
            snap = server.json("/api/scene")
            target = int(snap["version"])
            await asyncio.gather(pump(old, 1, r1, f1, lambda: target), pump(new, 2, r2, f2, lambda: target))
            want = {e["index"]: e for e in snap["entered"]}
            assert r1.version == r2.version == target
            assert r1.as_description() == want and r2.as_description() == want
        finally:
            server.http("/api/simulator", json.dumps({"running": True}).encode())
        await old.close()
        await new.close()

    asyncio.run(run())
