"""Bad input from misbehaving clients and raw sockets gets the close code or error the spec names, while a healthy
client connected throughout keeps receiving frames at its rate."""
import asyncio
import base64
import json
import os
import socket
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

import scenestream_wire as sw
from conftest import Server


class Healthy:
    """A well-behaved client that counts the frames it applies."""

    def __init__(self, url):
        self.url = url
        self.frames = 0
        self.times = []
        self.error = None

    async def run(self, stop):
        try:
            async with connect(self.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
                await ws.send(sw.hello(name="healthy"))
                await ws.recv()
                await ws.send(sw.subscribe("demo", rate=30))
                replica = sw.Replica()
                while not stop.is_set():
                    try:
                        data = await asyncio.wait_for(ws.recv(), 0.5)
                    except asyncio.TimeoutError:
                        continue
                    m = sw.decode_server(data)
                    if m["type"] in ("keyframe", "delta"):
                        replica.apply(m)
                        self.frames += 1
                        self.times.append(time.monotonic())
                        await ws.send(sw.ack(m["version"]))
        except Exception as e:  # recorded and asserted on by the test
            self.error = e


async def close_code_after(url, messages, hello_first=True):
    """The close code the server ends with, and the error codes it sent before closing (§8: an error, then the
    close)."""
    errors = []
    async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
        if hello_first:
            await ws.send(sw.hello(name="bad"))
            await ws.recv()
        for m in messages:
            await ws.send(m)
        try:
            while True:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] == "error":
                    errors.append(m["code"])
        except ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd else None), errors


async def error_reply(url, message):
    async with connect(url, subprotocols=["scenestream.v1"]) as ws:
        await ws.send(sw.hello(name="bad"))
        await ws.recv()
        await ws.send(message)
        reply = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(sw.ping(7))  # still open and serving
        pong = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
        return reply, pong


def raw_upgrade(port, protocol_header):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{protocol_header}\r\n")
    s.sendall(req.encode())
    data = s.recv(4096)
    return s, data


def test_bad_input_with_a_healthy_client(server):
    async def run():
        healthy = Healthy(server.url)
        stop = asyncio.Event()
        task = asyncio.create_task(healthy.run(stop))
        await asyncio.sleep(1.0)
        start_frames = healthy.frames

        # Text messages: 1003.
        assert (await close_code_after(server.url, ["hello as text"]))[0] == 1003
        # Garbage binary body (a hello claiming a 200-byte name): error 1 (malformed), then 1007.
        assert await close_code_after(server.url, [bytes([0x01, 0x00, 0x01, 0x01, 0x02, 0xC8, 0x01, 0x41])], hello_first=False) == (1007, [1])
        # Reserved flag bits: error 1, then 1007.
        assert await close_code_after(server.url, [bytes([0x03, 0x80, 0x01])]) == (1007, [1])
        # Anything before hello: error 5 (unauthenticated), then 1008. (Not with more messages sent behind it: the
        # server closes with those unread, and TCP may then reset the connection before the client reads the close.)
        assert await close_code_after(server.url, [sw.ping(1)], hello_first=False) == (1008, [5])
        # Oversize message: error 8 (tooLarge), then 1009.
        assert await close_code_after(server.url, [bytes([0x0C, 0x00]) + b"x" * (200 * 1024)]) == (1009, [8])
        # Unsupported protocol version (5…6): error 2, then 1002. An empty range (min 1 > max 0) is malformed.
        bad_version = bytes([0x01, 0x00, 0x05, 0x06, 0x02, 0x00, 0x00, 0x00, 0x00])
        assert await close_code_after(server.url, [bad_version], hello_first=False) == (1002, [2])
        empty_range = bytes([0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00])
        assert await close_code_after(server.url, [empty_range], hello_first=False) == (1007, [1])
        # An ack before subscribe: error 17 (notSubscribed), the connection stays open.
        reply, pong = await error_reply(server.url, sw.ack(5))
        assert (reply["type"], reply["code"]) == ("error", 17) and pong["nonce"] == 7
        # Unknown message type: error 3, connection stays open.
        reply, pong = await error_reply(server.url, bytes([0x7E, 0x00]))
        assert reply["type"] == "error" and reply["code"] == 3
        assert pong["type"] == "pong" and pong["nonce"] == 7
        # Unknown scene: error 4 with the request id.
        reply, _ = await error_reply(server.url, sw.subscribe("nope", request_id=99))
        assert (reply["code"], reply["requestId"]) == (4, 99)
        # No subprotocol, or the wrong one: the upgrade is refused.
        with pytest.raises(InvalidHandshake):
            async with connect(server.url):
                pass
        with pytest.raises(InvalidHandshake):
            async with connect(server.url, subprotocols=["chat"]):
                pass
        # A raw socket that sends a broken WebSocket frame header (reserved bits) is dropped.
        s, head = raw_upgrade(server.port, "Sec-WebSocket-Protocol: scenestream.v1\r\n")
        assert b"101" in head.split(b"\r\n")[0]
        s.sendall(bytes([0xF2, 0x85]) + os.urandom(4) + b"hello")
        s.settimeout(5)
        try:
            rest = s.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert rest == b"" or rest[0] & 0x0F == 0x8  # closed, or a close frame
        s.close()
        # A flood: 5000 pings at once. The first ~200 (the per-connection budget) are answered, the rest are
        # dropped with one rateLimited error; the flooder stays connected and the healthy client does not notice.
        async with connect(server.url, subprotocols=["scenestream.v1"]) as ws:
            await ws.send(sw.hello(name="flood"))
            await ws.recv()
            for k in range(5000):
                await ws.send(sw.ping(k))
            pongs, limited = 0, 0
            while True:
                try:
                    m = sw.decode_server(await asyncio.wait_for(ws.recv(), 1.0))
                except asyncio.TimeoutError:
                    break
                pongs += m["type"] == "pong"
                limited += m["type"] == "error" and m["code"] == 7
            assert limited >= 1 and 100 <= pongs < 1000, (pongs, limited)

        await asyncio.sleep(1.0)
        elapsed_frames = healthy.frames - start_frames
        stop.set()
        await task
        assert healthy.error is None, healthy.error
        # The healthy client asked for 30 Hz; over the ~2+ s of abuse it must have kept streaming.
        gaps = [b - a for a, b in zip(healthy.times, healthy.times[1:])]
        assert elapsed_frames > 30, elapsed_frames
        assert max(gaps) < 1.0, max(gaps)

    asyncio.run(run())


def test_slow_consumer_is_bounded(server):
    """A client that stops reading (but keeps acking) does not grow the server's memory or slow the others."""
    async def run():
        healthy = Healthy(server.url)
        stop = asyncio.Event()
        task = asyncio.create_task(healthy.run(stop))
        await asyncio.sleep(0.5)
        rss_before = server.rss_kb()

        # Raw socket: handshake, hello, subscribe at 60 Hz, ack far ahead, then never read again.
        s, head = raw_upgrade(server.port, "Sec-WebSocket-Protocol: scenestream.v1\r\n")
        assert b"101" in head.split(b"\r\n")[0]
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def frame(payload):
            mask = os.urandom(4)
            body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            n = len(payload)
            hdr = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
            return hdr + mask + body

        s.sendall(frame(sw.hello(name="slow")))
        s.sendall(frame(sw.subscribe("demo", rate=60)))
        start = time.monotonic()
        frames_at_start = healthy.frames
        while time.monotonic() - start < 4:
            s.sendall(frame(sw.ack(1 << 40)))
            await asyncio.sleep(0.1)
        rss_after = server.rss_kb()
        frames = healthy.frames - frames_at_start
        s.close()
        stop.set()
        await task
        assert healthy.error is None, healthy.error
        assert frames > 4 * 30 * 0.6, frames  # the healthy client kept most of its 30 Hz
        assert rss_after - rss_before < 30 * 1024, (rss_before, rss_after)

    asyncio.run(run())


def test_a_silent_connection_is_pinged_and_dropped_after_twice_the_heartbeat(tmp_path):
    """§5.1: the server pings a connection it has heard nothing from for heartbeatMs and drops one from which
    nothing at all (no message, no pong) arrives for twice that. A client whose WebSocket answers pings stays."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"heartbeatMs": 1000}))
    server = Server("--config", str(cfg))
    try:
        async def answering():
            # websockets answers pings by itself; its own keepalive pings are off, so only the server's count.
            async with connect(server.url, subprotocols=["scenestream.v1"], ping_interval=None) as ws:
                await ws.send(sw.hello(name="quiet-but-alive"))
                w = sw.decode_server(await ws.recv())
                assert w["heartbeatMs"] == 1000
                await asyncio.sleep(5)
                await ws.send(sw.ping(3))
                return sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
        assert asyncio.run(answering())["nonce"] == 3

        # A raw socket that says hello and then answers nothing.
        s, head = raw_upgrade(server.port, "Sec-WebSocket-Protocol: scenestream.v1\r\n")
        assert b"101" in head.split(b"\r\n")[0]
        payload = sw.hello(name="dead")
        mask = os.urandom(4)
        s.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        sent = time.monotonic()
        s.settimeout(10)
        opcodes, buf, gone = [], b"", None
        while gone is None:
            try:
                data = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                data = b""
            if not data:
                gone = time.monotonic() - sent
            buf += data
            while len(buf) >= 2:  # server frames are unmasked
                n, at = buf[1] & 0x7F, 2
                if n == 126:
                    n, at = int.from_bytes(buf[2:4], "big"), 4
                elif n == 127:
                    n, at = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < at + n:
                    break
                opcodes.append(buf[0] & 0x0F)
                buf = buf[at + n:]
        s.close()
        pings = opcodes.count(0x9)
        assert opcodes[0] == 0x2 and pings >= 1, opcodes  # the welcome, then pings
        # Dropped once 2 s passed with nothing heard (lws checks about once a second), well before the 10-s timeout.
        assert 1.9 <= gone <= 4.5, gone
    finally:
        assert server.stop() == 0
