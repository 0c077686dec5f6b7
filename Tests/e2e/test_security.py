"""Authentication and authorization against the real server: JWT refusals, zone-limited views checked byte by
byte, origin allow-list, token expiry and refresh, connection limits."""
import asyncio
import base64
import hashlib
import hmac
import json
import time
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

import scenestream_wire as sw
from conftest import Server

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(payload, secret=SECRET):
    """An HS256 JWT of `payload`, written from RFC 7519 (not from our Swift code)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def jwt(sub, role="operator", zones=None, exp_in=600, aud="scenestream", secret=SECRET, name=None):
    payload = {"sub": sub, "exp": int(time.time()) + exp_in, "aud": aud, "role": role}
    if zones is not None:
        payload["zones"] = zones
    if name:
        payload["name"] = name
    return sign(payload, secret)


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    d = tmp_path_factory.mktemp("secure")
    cfg = d / "config.json"
    cfg.write_text(json.dumps({"auth": {"hs256Secret": SECRET}, "allowedOrigins": ["http://viewer.plant.example"],
                               "maxConnectionsPerAddress": 12, "data": str(d / "data")}))
    s = Server("--config", str(cfg))
    yield s
    assert s.stop() == 0


async def hello_reply(url, token):
    async with connect(url, subprotocols=["scenestream.v1"]) as ws:
        await ws.send(sw.hello(token=token))
        reply = sw.decode_server(await asyncio.wait_for(ws.recv(), 10))
        try:
            await asyncio.wait_for(ws.recv(), 2)
            closed = None
        except asyncio.TimeoutError:
            closed = None
        except ConnectionClosed as e:
            closed = e.rcvd.code if e.rcvd else -1
        return reply, closed


@pytest.mark.parametrize("token,code", [
    ("", 5),
    ("demo:ada", 5),
    (jwt("ada", secret="not-the-right-secret-at-all-32-bytes!!"), 5),
    (jwt("ada", exp_in=-60), 16),
    (jwt("ada", aud="someone-else"), 5),
])
def test_tokens_refused(secure, token, code):
    reply, closed = asyncio.run(hello_reply(secure.url, token))
    assert reply["type"] == "error" and reply["code"] == code, reply
    assert closed is not None


def test_valid_token_is_welcomed(secure):
    reply, _ = asyncio.run(hello_reply(secure.url, jwt("ada", role="admin")))
    assert reply["type"] == "welcome"


def test_messages_sent_right_behind_hello_wait_for_the_token_check(secure):
    """A client may send subscribe (and more) right behind hello without waiting for welcome: while the server
    checks the token, they are held and then handled in order. A refused token drops them."""
    async def run(token):
        got = []
        async with connect(secure.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token=token))
            await ws.send(sw.subscribe("demo", rate=30))
            await ws.send(sw.ping(41))
            try:
                # Until the answers to both held messages are in (room news such as sessionState may come between).
                while not ({"keyframe", "pong"} <= {m["type"] for m in got if isinstance(m, dict)}) and len(got) < 20:
                    got.append(sw.decode_server(await asyncio.wait_for(ws.recv(), 10)))
            except ConnectionClosed as e:
                got.append(("closed", e.rcvd.code if e.rcvd else None))
        return got

    got = asyncio.run(run(jwt("ada", role="admin")))
    answers = [m["type"] for m in got if isinstance(m, dict) and m["type"] in ("welcome", "keyframe", "pong")]
    assert answers in (["welcome", "keyframe", "pong"], ["welcome", "pong", "keyframe"]), got
    assert any(m["type"] == "pong" and m["nonce"] == 41 for m in got)
    refused = asyncio.run(run(jwt("ada", secret="not-the-right-secret-at-all-32-bytes!!")))
    assert refused[0]["type"] == "error" and refused[0]["code"] == 5 and refused[-1] == ("closed", 1008), refused


async def collect(url, token, seconds, actions=None):
    """Every message body the client receives (inflated), and its replica."""
    bodies, replica = [], sw.Replica()
    async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
        await ws.send(sw.hello(token=token))
        w = sw.decode_server(await ws.recv())
        assert w["type"] == "welcome", w
        await ws.send(sw.subscribe("demo", rate=30))
        end = time.time() + seconds
        acted = False
        while time.time() < end:
            try:
                data = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            body = data[2:] if not data[1] & 1 else zlib.decompressobj(-15).decompress(data[2:])
            bodies.append(body)
            m = sw.decode_server(data)
            if m["type"] in ("keyframe", "delta"):
                replica.apply(m)
                await ws.send(sw.ack(m["version"]))
                if actions and not acted and replica.version:
                    acted = True
                    await actions(ws, replica)
    return bodies, replica


def test_zones_hold_on_a_version_2_stream(secure):
    """The same zone rule on the range-coded path (protocol 2): a contractor limited to line 01 gets no byte of line
    02 (names travel in the string table, uncompressed, so a byte search is exact), while an admin in the same run
    does — so the check could fail."""
    async def run(token):
        data, replica = [], sw.Replica()
        async with connect(secure.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token=token, max_version=2))
            w = sw.decode_server(await ws.recv())
            assert w["type"] == "welcome" and w["version"] == 2, w
            await ws.send(sw.subscribe("demo", rate=30))
            end = time.time() + 3
            while time.time() < end:
                msg = await asyncio.wait_for(ws.recv(), 5)
                data.append(msg)
                m = sw.decode_server(msg, 2)
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
                    await ws.send(sw.ack(m["version"]))
        return b"".join(data), replica

    async def both():
        return await asyncio.gather(run(jwt("con", zones=["hall-a-line-01"])), run(jwt("boss", role="admin")))

    (contractor, c_replica), (admin, a_replica) = asyncio.run(both())
    assert c_replica.nodes and b"line-02" not in contractor
    assert all(n["name"] != "line-02" for n in c_replica.nodes.values())
    assert b"line-02" in admin and len(a_replica.nodes) > len(c_replica.nodes)


def test_contractor_sees_nothing_from_other_zones(secure):
    async def admin_actions(ws, replica):
        await ws.send(sw.presence("hall-a", head=[30000, 1700, 20000]))
        # The admin selects and annotates a press on line 2.
        for i, n in replica.nodes.items():
            if n["name"] == "press-01" and replica.nodes[n["parent"]]["name"] == "line-02":
                await ws.send(sw.select([i]))
                await ws.send(sw.annotate(1, i, [0, 500, 0], "line-02 secret note"))

    async def contractor_actions(ws, replica):
        await asyncio.sleep(1.0)
        await ws.send(sw.playback("seek", int(time.time() * 1000) - 500))
        await asyncio.sleep(0.5)
        await ws.send(sw.playback("live"))

    async def run():
        admin = asyncio.create_task(collect(secure.url, jwt("boss", role="admin"), 5, admin_actions))
        await asyncio.sleep(0.5)
        contractor = asyncio.create_task(collect(secure.url, jwt("con", role="operator", zones=["hall-a-line-01"]), 4, contractor_actions))
        return await admin, await contractor

    (admin_bodies, admin_replica), (bodies, replica) = asyncio.run(run())
    names = {n["name"] for n in replica.nodes.values()}
    # The contractor sees its line, and the structure above it, and nothing else.
    assert "line-01" in names and "hall-a" in names and "robot-01" in names
    assert "line-02" not in names and not any(n.startswith("~presence") for n in names)
    blob = b"".join(bodies)
    for secret in (b"line-02", b"~presence", b"secret note", b"agv-", b"column-"):
        assert secret not in blob, secret
    # The admin saw them (so the check above could have failed).
    admin_blob = b"".join(admin_bodies)
    assert b"line-02" in admin_blob and b"~presence" in admin_blob


def test_origin_allow_list(secure):
    async def run(origin):
        try:
            async with connect(secure.url, subprotocols=["scenestream.v1"], origin=origin) as ws:
                await ws.send(sw.hello(token=jwt("ada")))
                return sw.decode_server(await ws.recv())["type"]
        except InvalidHandshake:
            return "refused"
    assert asyncio.run(run("http://evil.example")) == "refused"
    assert asyncio.run(run("http://viewer.plant.example")) == "welcome"


def test_token_expiry_and_refresh(secure):
    async def run(refresh):
        async with connect(secure.url, subprotocols=["scenestream.v1"]) as ws:
            await ws.send(sw.hello(token=jwt("ada", exp_in=2)))
            assert sw.decode_server(await ws.recv())["type"] == "welcome"
            await ws.send(sw.subscribe("demo"))
            if refresh:
                await asyncio.sleep(0.5)
                await ws.send(sw.envelope("refreshToken", sw.W().string(jwt("ada", exp_in=600)).b))
            errors = []
            end = time.time() + 5
            try:
                while time.time() < end:
                    m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                    if m["type"] in ("keyframe", "delta"):
                        await ws.send(sw.ack(m["version"]))
                    if m["type"] == "error":
                        errors.append(m["code"])
            except ConnectionClosed:
                return "closed", errors
            return "open", errors
    assert asyncio.run(run(False)) == ("closed", [16])
    assert asyncio.run(run(True)) == ("open", [])


def test_connections_per_address_are_limited(secure):
    async def run():
        conns, refused = [], 0
        for _ in range(14):
            ws = await connect(secure.url, subprotocols=["scenestream.v1"])
            conns.append(ws)
        for ws in conns:
            try:
                await ws.send(sw.hello(token=jwt("ada")))
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                refused += m["type"] == "error" and m["code"] == 7
            except ConnectionClosed:
                refused += 1
        for ws in conns:
            await ws.close()
        return refused
    assert asyncio.run(run()) >= 2
