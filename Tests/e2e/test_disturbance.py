"""Nobody's disturbance reaches a healthy client's stream (issue 11, findings 3, 5, 6, 7, 8, 11). A watcher process
streams at 30 Hz and acks every frame; its frames' commit times are compared undisturbed and then while others
load the server: 10 scene snapshots a second on the reference plant, 1,000 subscribers closing at once, 100
connections a second, 200 HTTP ingest batches a second, 150 annotations a second, a huge Sparkplug message. The rate
must stay within 5 %, and no gap between commits may exceed two ticks by the server's own doing (its service thread
busy for more than a tick of it: the server measures its CPU time). Commit times come from the server, so a slow Python process cannot pass for a
slow server (nor hide one)."""
import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

import scenestream_wire as sw
import sparkplug as sp
from broker import Broker
from conftest import Server, release_binary
from test_sparkplug import refused

HERE = Path(__file__).parent
TICK_MS = 1000 / 30
WINDOW = 4.0


class Watcher:
    """The healthy client, in its own process."""

    def __init__(self, server, scene):
        self.server = server
        self.proc = subprocess.Popen([sys.executable, str(HERE / "watcher.py"), server.url, scene], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.frames = []  # (arrival, commit ms, version)
        first = self.proc.stdout.readline().strip()
        assert first == "ready", first
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + 20
        while len(self.frames) < 30 and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.frames) >= 30, "the watcher gets no frames"

    def _read(self):
        for line in self.proc.stdout:
            a, t, v = line.split()
            self.frames.append((float(a), int(t), int(v)))

    def window(self, seconds=WINDOW, during=None):
        """Frames that arrived while `during` ran (or for `seconds`): rate by commit time and the largest gap."""
        stalls = self.stalls()
        start = time.time()
        if during:
            during()
        remaining = seconds - (time.time() - start)
        if remaining > 0:
            time.sleep(remaining)
        end = time.time()
        got = [f for f in self.frames if start <= f[0] <= end]
        assert len(got) >= 2, "no frames in the window"
        commits = [f[1] for f in got]
        span = (commits[-1] - commits[0]) / 1000
        return {"rate": (len(got) - 1) / span if span else 0, "gap": max(b - a for a, b in zip(commits, commits[1:])),
                "frames": len(got), "stalls": self.stalls() - stalls}

    def stalls(self):
        """Tick intervals over two ticks long in which the server's service thread was busy with its own work (CPU
        time, as the server measures it) for more than a tick."""
        for line in self.server.http("/metrics")[1].decode().splitlines():
            if line.startswith("scenestream_loop_stalls_total "):
                return float(line.split()[1])
        raise AssertionError("no scenestream_loop_stalls_total in /metrics")

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def undisturbed(before, during, what):
    assert during["rate"] >= 0.95 * before["rate"], f"{what}: rate {during['rate']:.1f} vs {before['rate']:.1f} before"
    # A gap between commits over two ticks fails when the server caused it: the thread that sends frames was busy
    # with its own work for more than a tick of that interval (CPU time, measured by the server) — an 8,000-metric
    # birth applied in one tick was such a stall. A long gap without that is the operating system giving the cores
    # to the load generator (2 cores, everything on one machine): reported, and the rate above must still hold.
    assert during["stalls"] == 0, (f"{what}: {during['stalls']:.0f} gaps over two ticks of the server's own making "
                                   f"(largest gap between commits {during['gap']} ms, before: {before['gap']} ms)")
    if during["gap"] > 2 * TICK_MS + 2:
        print(f"{what}: a {during['gap']} ms gap between commits , none of the server's making (scheduling)")


def config(tmp_path, **extra):
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"data": str(tmp_path / "data"), **extra}))
    return f


def http(server, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def paced(per_second, seconds, work, threads=4):
    """Calls `work()` about `per_second` times a second for `seconds`, from a few threads; returns the results."""
    results, lock = [], threading.Lock()
    end = time.time() + seconds
    interval = threads / per_second

    def run(offset):
        t = time.time() + offset
        while t < end:
            r = work()
            with lock:
                results.append(r)
            t += interval
            time.sleep(max(0, t - time.time()))

    ts = [threading.Thread(target=run, args=(k * interval / threads,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def test_scene_snapshots_do_not_stall_the_stream(tmp_path):
    s = Server("--plant", "Assets/plants/reference", "--config", str(config(tmp_path)), exe=release_binary())
    w = Watcher(s, "reference")
    try:
        before = w.window()
        done = []
        during = w.window(during=lambda: done.extend(paced(10, WINDOW, lambda: len(http(s, "/api/scene")[1]))))
        assert len(done) >= 0.8 * 10 * WINDOW and min(done) > 1_000_000, (len(done), min(done))
        undisturbed(before, during, "10 GET /api/scene a second")
    finally:
        w.stop()
        assert s.stop() == 0


def test_a_thousand_subscribers_closing_at_once(tmp_path):
    s = Server("--config", str(config(tmp_path, maxConnectionsPerAddress=2000, roomCapacity=2000,
                                      connectionsPerSecondPerAddress=5000, connectionBurstPerAddress=5000)), exe=release_binary())
    w = Watcher(s, "demo")

    async def crowd():
        async def one(k):
            ws = await connect(s.url, subprotocols=["scenestream.v1"], max_size=None, open_timeout=60)
            await ws.send(sw.hello(token=f"demo:crowd-{k}"))
            assert sw.decode_server(await asyncio.wait_for(ws.recv(), 60))["type"] == "welcome"
            # At 1 Hz, never acking: the server sends at most its ack window, then waits.
            await ws.send(sw.subscribe("demo", rate=1))
            while sw.decode_server(await asyncio.wait_for(ws.recv(), 60))["type"] != "keyframe":
                pass
            return ws
        conns = []
        for k in range(0, 1000, 100):
            conns += await asyncio.gather(*(one(i) for i in range(k, k + 100)))
        return conns

    loop = asyncio.new_event_loop()
    try:
        conns = loop.run_until_complete(crowd())
        assert len(conns) == 1000
        before = w.window()

        def close_all():
            for ws in conns:
                ws.transport.abort()  # all 1,000 sockets go in the same instant
        during = w.window(during=close_all)
        undisturbed(before, during, "1,000 subscribers closing at once")
        # Nobody healthy was closed as "not reading".
        assert w.proc.poll() is None
    finally:
        loop.close()
        w.stop()
        assert s.stop() == 0


def test_connection_churn_is_limited_per_address(tmp_path):
    s = Server("--config", str(config(tmp_path)), exe=release_binary())
    w = Watcher(s, "demo")
    outcomes = []

    async def churn():
        end = time.time() + WINDOW
        k = 0
        while time.time() < end:
            k += 1
            asyncio.ensure_future(one(k))
            await asyncio.sleep(0.01)  # 100 a second
        await asyncio.sleep(1)

    async def one(k):
        try:
            async with connect(s.url, subprotocols=["scenestream.v1"], open_timeout=10) as ws:
                await ws.send(sw.hello(token=f"demo:churn-{k}"))
                await ws.send(sw.subscribe("demo"))
                await asyncio.wait_for(ws.recv(), 5)
                outcomes.append("served")
        except Exception as e:
            outcomes.append("429" if "429" in str(e) else type(e).__name__)

    try:
        before = w.window()
        during = w.window(during=lambda: asyncio.run(churn()))
        assert outcomes.count("429") > len(outcomes) / 2, {o: outcomes.count(o) for o in set(outcomes)}  # most are refused at the handshake
        assert "served" in outcomes  # within the limit they are served
        undisturbed(before, during, "100 connections a second")
    finally:
        w.stop()
        assert s.stop() == 0


def test_http_ingest_batches_do_not_stall_the_stream(tmp_path):
    s = Server("--config", str(config(tmp_path, ingestToken="ingest-token-0123456789")), exe=release_binary())
    w = Watcher(s, "demo")
    twins = [f"hall-a/line-0{1 + k % 2}/press-0{1 + k % 3}" for k in range(20)]

    def batch():
        body = json.dumps({"updates": [{"twin": t, "property": "temperature", "value": 40 + k} for k, t in enumerate(twins)]}).encode()
        return http(s, "/api/ingest", body, token="ingest-token-0123456789")[0]

    try:
        before = w.window()
        codes = []
        during = w.window(during=lambda: codes.extend(paced(200, WINDOW, batch, threads=8)))
        assert codes.count(200) >= 0.8 * 200 * WINDOW, {c: codes.count(c) for c in set(codes)}
        undisturbed(before, during, "200 ingest batches a second")
    finally:
        w.stop()
        assert s.stop() == 0


def test_annotation_spam_is_capped_and_answered(tmp_path):
    s = Server("--config", str(config(tmp_path, maxAnnotationsPerUser=100)), exe=release_binary())
    w = Watcher(s, "demo")
    sent, errors, notes = [0], [], set()

    async def spam():
        async with connect(s.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token="demo:spammer"))
            await ws.recv()
            await ws.send(sw.subscribe("demo", rate=30))
            replica = sw.Replica()
            while not replica.version:
                m = sw.decode_server(await ws.recv())
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
            node = next(i for i, n in replica.nodes.items() if n["name"] == "press-01")
            end = time.time() + WINDOW

            async def read():
                while True:
                    m = sw.decode_server(await ws.recv())
                    if m["type"] in ("keyframe", "delta"):
                        replica.apply(m)
                        await ws.send(sw.ack(m["version"]))
                    elif m["type"] == "error":
                        errors.append(m["requestId"])
            reader = asyncio.ensure_future(read())
            k = 0
            while time.time() < end:
                k += 1
                await ws.send(sw.annotate(k, node, [0, 100, 0], f"spam {k}"))
                sent[0] += 1
                await asyncio.sleep(1 / 150)
            await asyncio.sleep(1.5)
            reader.cancel()
            notes.update(n["label"] for n in replica.nodes.values() if n.get("label", "").startswith("spam "))

    try:
        before = w.window()
        during = w.window(during=lambda: asyncio.run(spam()))
        undisturbed(before, during, "150 annotations a second")
        # Every note either appeared or was answered with an error for its request; at most the per-user cap stand.
        assert len(notes) <= 100
        assert len(notes) + len(set(errors)) >= sent[0] * 0.99, (len(notes), len(set(errors)), sent[0])
    finally:
        w.stop()
        assert s.stop() == 0


def test_a_huge_sparkplug_message_is_refused_and_a_large_one_does_not_stall(tmp_path):
    broker = Broker()
    m = {"port": broker.port, "sparkplug": {"groups": ["hall-a"], "hostId": "scenestream-dist", "rebirthIntervalMs": 0}}
    s = Server("--config", str(config(tmp_path, mqtt=m)), exe=release_binary())
    w = Watcher(s, "demo")
    edge = sp.EdgeNode(broker.port, "hall-a", "line-09")
    try:
        deadline = time.time() + 20
        while time.time() < deadline and "scenestream_mqtt_connected 1" not in s.http("/metrics")[1].decode():
            time.sleep(0.1)
        # A birth with 8,000 metrics (about 200 KB, under the cap) is applied; then 100,000 (1.7 MB) is refused.
        # Both are encoded before the window: building them costs this process a core for a second or more, and on
        # a 2-core machine that would measure Python's scheduling rather than the server.
        birth = sp.payload([sp.metric("bdSeq", datatype=sp.UINT64, value=edge.bd_seq), sp.metric("Node Control/Rebirth", datatype=sp.BOOLEAN, value=False),
                            *(sp.metric(f"m/x{i}", alias=i + 10, datatype=sp.DOUBLE, value=float(i)) for i in range(8_000))], seq=0)
        huge = sp.payload([sp.metric(alias=i + 10, datatype=sp.DOUBLE, value=1.0) for i in range(100_000)], seq=1)
        before = w.window()

        def flood():
            edge.publish(edge.topic("NBIRTH"), birth)
            edge.publish(edge.topic("DDATA", "d"), huge)
        during = w.window(during=flood)
        undisturbed(before, during, "a 1.7 MB Sparkplug message")
        deadline = time.time() + 10
        while time.time() < deadline and refused(s, "sparkplug", "too_large") < 1:
            time.sleep(0.1)
        assert refused(s, "sparkplug", "too_large") == 1
        status, body = http(s, "/api/twin?id=hall-a/line-09/m")
        assert status == 200 and json.loads(body)["properties"]["x7999"]["value"] == 7999.0
    finally:
        edge.close()
        w.stop()
        assert s.stop() == 0
        broker.close()
