#!/usr/bin/env python3
"""Disturbance benchmark: does one healthy 30 Hz client keep its frames while others misbehave?

Starts `scenestream serve` on the reference plant, keeps one healthy client subscribed at 30 Hz (acking every
frame, in its own process so the load generator cannot delay its clock), and measures its frame rate and largest
gap between frames over a window: first undisturbed, then during each disturbance:

  a close1000    1,000 extra subscribers (opened before the window, at --extra-rate) all closed at once inside it
  b scene10      10 GET /api/scene per second
  c churn100     100 connections per second from one address: hello, subscribe, first keyframe, close
  d ingest200    200 POST /api/ingest batches per second, 20 updates each
  e annotate150  one participant sending 150 annotate messages per second

Goal per phase: rate within 5 % of the undisturbed rate, largest gap <= 2 ticks (66.7 ms), no drop. Failed
requests and refused connections are counted and reported, never fatal. The CPU this process, the healthy
client and the server used in each window is printed, so a reader can tell whether the load generator kept up.

    python3 Tests/bench/disturbance.py [--bin .build/release/scenestream] [--seconds 8] [--phases a,c] [--json]
        [--set connectionsPerSecondPerAddress=1000 ...]   # more server configuration keys
"""
import argparse
import asyncio
import collections
import concurrent.futures
import itertools
import json
import os
import pathlib
import queue
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import scenestream_wire as sw  # noqa: E402

PLANT = ROOT / "Assets" / "plants" / "reference"
RATE_HZ = 30
MAX_GAP_MS = 2000 / RATE_HZ
RATE_TOLERANCE = 0.05
INGEST_TOKEN = "bench-disturbance"
PHASES = ["close1000", "scene10", "churn100", "ingest200", "annotate150"]
FRAMES = (sw.MSG["keyframe"], sw.MSG["delta"])


def ws_connect(url):
    # No client keepalive pings: a busy server's late pong must not make this side hang up (the server has its own).
    return connect(url, subprotocols=["scenestream.v1"], max_size=None, compression=None, open_timeout=20,
                   ping_interval=None)


def peek(msg):
    """(type, version) of a message; version only for frames, read without decoding (or inflating) the rest."""
    kind = sw.NAMES.get(msg[0], "unknown")
    if msg[0] not in FRAMES:
        return kind, None
    body = zlib.decompressobj(-15).decompress(msg[2:], 16) if msg[1] & 1 else msg[2:]
    return kind, sw.Reader(body).varint()


class Refused(Exception):
    """The server answered with an error message instead of what was asked for."""


def failure(e):
    """A short name for why a request or connection failed."""
    if isinstance(e, Refused):
        return str(e)
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, Exception):
        e = e.reason
    if isinstance(e, InvalidStatus):
        return f"http {e.response.status_code}"
    if isinstance(e, InvalidMessage) and (m := re.search(r"HTTP/1\.0 (\d{3})", str(e.__cause__))):
        return f"http {m[1]}"  # a refusal this client library does not parse (HTTP/1.0 status line)
    if isinstance(e, ConnectionClosed):
        return f"closed {e.rcvd.code}" if e.rcvd else "closed abnormally"
    return type(e).__name__


def error_outcome(msg):
    m = sw.decode_server(msg)
    return f"error {m['code']}" if m["type"] == "error" else f"unexpected {m['type']}"


async def open_subscribed(url, scene, rate, token="", name="bench", layers=()):
    """Connects, says hello and subscribes; returns the socket and its first keyframe (acknowledged). Raises
    `Refused` when the server answers with an error instead."""
    ws = await ws_connect(url)
    try:
        await ws.send(sw.hello(name=name, token=token))
        first = await asyncio.wait_for(ws.recv(), 30)
        if first[0] != sw.MSG["welcome"]:
            raise Refused(error_outcome(first))
        await ws.send(sw.subscribe(scene, rate=rate, layers=list(layers)))
        while True:
            msg = await asyncio.wait_for(ws.recv(), 60)
            kind, version = peek(msg)
            if kind == "error":
                raise Refused(error_outcome(msg))
            if kind == "keyframe":
                await ws.send(sw.ack(version))
                return ws, msg
    except BaseException:
        await ws.close()
        raise


async def retrying(make, refusals, timeout=None):
    """`make()` until it succeeds, counting each failure by name (say, a limit on new connections per second
    answered 429) and backing off (exponential, with jitter); gives up with the last failure after `timeout`
    seconds (None: until cancelled)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for attempt in itertools.count():
        try:
            return await make()
        except Exception as e:
            refusals[failure(e)] += 1
            if deadline is not None and time.monotonic() > deadline:
                raise
        await asyncio.sleep(min(4.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0))


def cpu_of(pid):
    """CPU seconds (user + system) of another process so far."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------------------------------- the server

class Server:
    """`scenestream serve` on a free loopback port, ready once it printed `listening on port N`."""

    def __init__(self, binary, tmp, config):
        cfg = tmp / "config.json"
        cfg.write_text(json.dumps(config))
        self.log = tmp / "server.log"
        (tmp / "data").mkdir()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [binary, "serve", "--port", "0", "--bind", "127.0.0.1", "--plant", str(PLANT.relative_to(ROOT)),
                 "--data", str(tmp / "data"), "--log-level", "notice", "--config", str(cfg)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        # One thread reads stdout for the whole run (the server never blocks on a full pipe) and hands lines over.
        self.lines = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = None

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        try:
            while (line := self.lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
                if line.startswith("listening on port "):
                    self.port = int(line.split()[-1])
                    return
        except queue.Empty:
            pass
        raise RuntimeError("server did not start")

    def log_tail(self, n=3000):
        return self.log.read_text(errors="replace")[-n:]

    def check(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------------- healthy client

async def healthy_client(url, scene):
    """Child process: subscribe at 30 Hz and ack every frame; print `F time kind version` per frame (monotonic
    clock, the same for every process), `E time code message` per error and `D time reason` when the connection
    is lost (then connect again: a drop costs a keyframe, as it would cost a real client)."""
    out = sys.stdout
    while True:
        try:
            async with ws_connect(url) as ws:
                await ws.send(sw.hello(name="bench/healthy", token="demo:healthy"))
                welcome = await asyncio.wait_for(ws.recv(), 20)
                if welcome[0] != sw.MSG["welcome"]:
                    raise Refused(error_outcome(welcome))
                await ws.send(sw.subscribe(scene, rate=RATE_HZ))
                async for msg in ws:
                    t = time.monotonic()
                    kind, version = peek(msg)
                    if version is not None:
                        await ws.send(sw.ack(version))
                        out.write(f"F {t:.6f} {kind} {version}\n")
                    elif kind == "error":
                        m = sw.decode_server(msg)
                        out.write(f"E {t:.6f} {m['code']} {m['message']!r}\n")
                    else:
                        continue
                    out.flush()
            reason = f"closed {ws.close_code}"
        except Exception as e:
            reason = failure(e)
        out.write(f"D {time.monotonic():.6f} {reason}\n")
        out.flush()
        await asyncio.sleep(0.2)


class Healthy:
    """The parent's view of the healthy client process: every frame's arrival time, errors and drops."""

    def __init__(self):
        self.times, self.keyframes, self.errors, self.drops = [], [], [], []
        self.exited = None

    async def start(self, url, scene):
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--healthy-client", url, scene, stdout=asyncio.subprocess.PIPE)
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for line in self.proc.stdout:
            kind, t, *rest = line.decode().split(maxsplit=3)
            t = float(t)
            if kind == "F":
                self.times.append(t)
                if rest[0] == "keyframe":
                    self.keyframes.append(t)
            elif kind == "E":
                self.errors.append((t, int(rest[0]), rest[1].strip()))
            elif kind == "D":
                self.drops.append((t, " ".join(rest)))
        self.exited = await self.proc.wait()

    def check(self):
        if self.exited is not None:
            raise RuntimeError(f"healthy client process exited with {self.exited}")

    def stats(self, t0, t1):
        """Frames per second in [t0, t1] and the largest gap between frames, counting the window's edges."""
        inside = [t for t in self.times if t0 <= t <= t1]
        edges = [t0, *inside, t1]
        return {
            "frames": len(inside),
            "rate": len(inside) / (t1 - t0),
            "maxGapMs": 1000 * max(b - a for a, b in zip(edges, edges[1:])),
            "keyframes": sum(t0 <= t <= t1 for t in self.keyframes),
            "errors": sum(t0 <= t <= t1 for t, _, _ in self.errors),
            "drops": [reason for t, reason in self.drops if t0 <= t <= t1],
        }

    async def settle(self, rate, timeout):
        """Waits until the last second looks healthy again (rate within tolerance, no gap over 2 ticks); the time
        it took, or None if it did not within the timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check()
            now = time.monotonic() - 0.1  # frames of the last 100 ms may still be in the pipe
            s = self.stats(now - 1, now)
            if s["rate"] >= rate * (1 - RATE_TOLERANCE) and s["maxGapMs"] <= MAX_GAP_MS:
                return round(time.monotonic() - start, 2)
            await asyncio.sleep(0.25)
        return None

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# ---------------------------------------------------------------------------------------------------- load

class Tally:
    """Outcomes of paced requests, counted by name (an HTTP status, `ok`, or why it failed); the successful ones
    are counted in done/s and timed."""

    def __init__(self, rate):
        self.rate = rate
        self.issued = 0
        self.skipped = 0  # not issued: too many still in flight (the server is not keeping up)
        self.outcomes = collections.Counter()
        self.ok = 0
        self.latencies = []

    async def run(self, make):
        t = time.monotonic()
        try:
            outcome, ok = await make()
        except Exception as e:  # counted, never fatal
            outcome, ok = failure(e), False
        self.outcomes[outcome] += 1
        if ok:
            self.ok += 1
            self.latencies.append(time.monotonic() - t)

    def summary(self, seconds):
        lat = sorted(self.latencies)
        return {
            "target": self.rate, "issued": self.issued, "skipped": self.skipped, "done": self.ok,
            "donePerSecond": round(self.ok / seconds, 1), "outcomes": dict(self.outcomes),
            "latencyMs": {"p50": round(1000 * lat[len(lat) // 2], 1), "max": round(1000 * lat[-1], 1)} if lat else None,
        }


async def paced(tally, t1, make, cap):
    """Starts `make()` `tally.rate` times a second until t1 (open loop: not waiting for answers), at most `cap` in
    flight; then waits (bounded) for the ones still running."""
    running = set()
    start, i = time.monotonic(), 0
    while (due := start + i / tally.rate) < t1:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        i += 1
        if len(running) >= cap:
            tally.skipped += 1
            continue
        tally.issued += 1
        task = asyncio.create_task(tally.run(make))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        _, late = await asyncio.wait(list(running), timeout=15)
        for task in late:
            task.cancel()
        if late:
            tally.outcomes["unfinished"] += len(late)


class Bench:
    def __init__(self, args, server, healthy, scene):
        self.args, self.server, self.healthy, self.scene = args, server, healthy, scene
        self.url = f"ws://127.0.0.1:{server.port}/stream"
        self.base = f"http://127.0.0.1:{server.port}"
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=64)
        self.http_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy

    # ---- plain HTTP in the thread pool

    def _http(self, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
        try:
            with self.http_opener.open(req, timeout=10) as r:
                r.read()
                return str(r.status), 200 <= r.status < 300
        except urllib.error.HTTPError as e:
            e.read()
            return str(e.code), False

    def http(self, path, body=None, headers=None):
        return asyncio.get_running_loop().run_in_executor(self.pool, self._http, path, body, headers)

    # ---- one measured window

    async def window(self, name, disturb=None, prepared=None):
        """Measures the healthy client for --seconds while `disturb(t1)` runs; `prepared` is what was set up
        before the window (reported with the phase)."""
        seconds = self.args.seconds
        cpu0 = own_cpu(), cpu_of(self.healthy.proc.pid), cpu_of(self.server.proc.pid)
        t0 = time.monotonic()
        t1 = t0 + seconds
        task = asyncio.create_task(disturb(t1)) if disturb else None
        await asyncio.sleep(max(0.0, t1 - time.monotonic()))
        cpu1 = own_cpu(), cpu_of(self.healthy.proc.pid), cpu_of(self.server.proc.pid)
        await asyncio.sleep(0.2)  # the healthy client's last lines
        achieved = await task if task else {}
        self.healthy.check()
        self.server.check()
        cpu = {k: round(b - a, 2) for k, a, b in zip(("benchS", "healthyClientS", "serverS"), cpu0, cpu1)}
        return {"phase": name, **self.healthy.stats(t0, t1), "cpu": cpu,
                "disturbance": {**(prepared or {}), **achieved}}

    # ---- disturbances

    async def close1000(self):
        subs, refusals, lost, closing = [], collections.Counter(), collections.Counter(), False
        gate = asyncio.Semaphore(50)

        async def open_one():
            async with gate:
                ws, _ = await open_subscribed(self.url, self.scene, self.args.extra_rate, name="bench/extra")
            subs.append((ws, asyncio.create_task(keep_acking(ws))))

        async def keep_acking(ws):
            try:
                async for msg in ws:
                    if msg[0] in FRAMES:
                        await ws.send(sw.ack(peek(msg)[1]))
            except ConnectionClosed as e:
                if not closing:
                    lost[f"{failure(e)}, sent {e.sent.code if e.sent else None} {e.sent.reason if e.sent else ''}"] += 1

        cpu0, start = own_cpu(), time.monotonic()
        # Refusals are counted and retried until --open-timeout.
        tasks = [asyncio.create_task(retrying(open_one, refusals)) for _ in range(1000)]
        _, late = await asyncio.wait(tasks, timeout=self.args.open_timeout)
        for t in late:
            t.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        prepared = {"subscribers": len(subs), "notOpened": len(late), "openRefusals": dict(refusals),
                    "openSeconds": round(time.monotonic() - start, 2), "openBenchCpuS": round(own_cpu() - cpu0, 2),
                    "settleAfterOpenS": await self.healthy.settle(self.reference_rate, self.args.settle_timeout)}

        async def disturb(t1):
            await asyncio.sleep(min(1.0, self.args.seconds / 4))  # some healthy frames before the close
            nonlocal closing
            closing = True
            start = time.monotonic()
            await asyncio.gather(*(ws.close() for ws, _ in subs), return_exceptions=True)
            closed = time.monotonic() - start
            await asyncio.gather(*(t for _, t in subs), return_exceptions=True)
            return {"lostBeforeClose": dict(lost), "closeSeconds": round(closed, 3),
                    "closeCodes": dict(collections.Counter(str(ws.close_code) for ws, _ in subs))}

        try:
            return await self.window("close1000", disturb, prepared)
        finally:
            await asyncio.gather(*(ws.close() for ws, _ in subs), return_exceptions=True)

    async def scene10(self):
        async def disturb(t1):
            tally = Tally(10)
            await paced(tally, t1, lambda: self.http("/api/scene"), cap=20)
            return tally.summary(self.args.seconds)
        return await self.window("scene10", disturb)

    async def churn100(self):
        async def once():
            async with ws_connect(self.url) as ws:
                await ws.send(sw.hello(name="bench/churn"))
                msg = await asyncio.wait_for(ws.recv(), 10)
                if msg[0] != sw.MSG["welcome"]:
                    return error_outcome(msg), False
                await ws.send(sw.subscribe(self.scene, rate=RATE_HZ))
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 10)
                    if msg[0] == sw.MSG["keyframe"]:
                        return "ok", True
                    if msg[0] == sw.MSG["error"]:
                        return error_outcome(msg), False

        async def disturb(t1):
            tally = Tally(100)
            await paced(tally, t1, once, cap=200)
            return tally.summary(self.args.seconds)
        return await self.window("churn100", disturb)

    async def ingest200(self):
        # Twin properties the reference plant binds: press temperatures and tank levels.
        twins = json.loads((PLANT / "twins.json").read_text())["twins"]
        props = [(t["id"], "temperature", 40, 95) for t in twins if t["model"] == "press"]
        props += [(t["id"], "level", 0, 100) for t in twins if t["model"] == "tank"]
        headers = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}

        def batch():
            updates = [{"twin": twin, "property": p, "value": round(random.uniform(lo, hi), 2)}
                       for twin, p, lo, hi in random.sample(props, 20)]
            return json.dumps({"updates": updates}).encode()

        async def disturb(t1):
            tally = Tally(200)
            await paced(tally, t1, lambda: self.http("/api/ingest", batch(), headers), cap=60)
            return {"updatesPerBatch": 20, **tally.summary(self.args.seconds)}
        return await self.window("ingest200", disturb)

    async def annotate150(self):
        # Only static layers plus annotations: the spammer's own frames stay small and cheap to decode here.
        refusals = collections.Counter()
        ws, keyframe = await retrying(lambda: open_subscribed(
            self.url, self.scene, RATE_HZ, token="demo:spammer", name="bench/spammer",
            layers=["structure", "annotations"]), refusals, timeout=30)
        replica, confirmed, errors, ended = sw.Replica(), {}, {}, []

        def apply(m):
            replica.apply(m)
            for _, node in m["entered"]:
                if node["name"].startswith("~note-") and node["label"].startswith("bench-"):
                    confirmed.setdefault(int(node["label"][6:]), time.monotonic())

        async def read():
            try:
                async for msg in ws:
                    m = sw.decode_server(msg)
                    if m["type"] in ("keyframe", "delta"):
                        apply(m)
                        await ws.send(sw.ack(m["version"]))
                    elif m["type"] == "error":
                        errors.setdefault(m["requestId"], m["code"])
            except (ConnectionClosed, sw.WireError) as e:
                ended.append(failure(e))

        apply(sw.decode_server(keyframe))
        reader = asyncio.create_task(read())
        try:
            node = next(i for i, n in sorted(replica.nodes.items()) if n["parent"] is not None)
            prepared = {"joinRefusals": dict(refusals),
                        "settleAfterJoinS": await self.healthy.settle(self.reference_rate, self.args.settle_timeout)}
            ids, sent = iter(range(1, 1 << 31)), []

            async def send_one():
                rid = next(ids)
                await ws.send(sw.annotate(rid, node, (0, 500, 0), f"bench-{rid}"))
                sent.append(rid)
                return "sent", True

            async def disturb(t1):
                tally = Tally(150)
                await paced(tally, t1, send_one, cap=50)
                t0 = t1 - self.args.seconds
                in_window = sum(t0 <= t <= t1 for t in confirmed.values())
                # Let answers still on their way arrive (bounded), then count what was confirmed.
                last, quiet = len(confirmed) + len(errors), time.monotonic()
                while time.monotonic() - quiet < 3 and len(set(confirmed) | set(errors)) < len(sent):
                    await asyncio.sleep(0.1)
                    if len(confirmed) + len(errors) != last:
                        last, quiet = len(confirmed) + len(errors), time.monotonic()
                refused = collections.Counter(str(errors[r]) for r in sent if r in errors and r not in confirmed)
                return {
                    "target": 150, "sent": tally.ok, "sentPerSecond": round(tally.ok / self.args.seconds, 1),
                    "sendFailures": {k: v for k, v in tally.outcomes.items() if k != "sent"},
                    "notesPerSecond": round(in_window / self.args.seconds, 1), "confirmed": len(confirmed),
                    "errorsByCode": dict(refused), "neither": sum(r not in confirmed and r not in errors for r in sent),
                    "unattributedErrors": dict(collections.Counter(str(c) for r, c in errors.items() if r not in sent)),
                    "spammerLost": ended,
                }
            return await self.window("annotate150", disturb, prepared)
        finally:
            await ws.close()
            await reader

    # ---- the run

    async def run(self, phases):
        self.reference_rate = RATE_HZ
        results = []
        settle = await self.healthy.settle(RATE_HZ, self.args.settle_timeout)
        results.append({**await self.window("undisturbed"), "settleBeforeS": settle})
        self.reference_rate = min(RATE_HZ, results[0]["rate"])
        for name in phases:
            r = await getattr(self, name)()
            r["settleAfterS"] = await self.healthy.settle(self.reference_rate, self.args.settle_timeout)
            results.append(r)
        base = results[0]
        for r in results:
            ref_rate = RATE_HZ if r is base else base["rate"]
            r["rateRatio"] = round(r["rate"] / ref_rate, 3) if ref_rate else None
            r["gapRatio"] = round(r["maxGapMs"] / base["maxGapMs"], 2) if base["maxGapMs"] else None
            r["pass"] = r["rate"] >= ref_rate * (1 - RATE_TOLERANCE) and r["maxGapMs"] <= MAX_GAP_MS and not r["drops"]
            r["rate"] = round(r["rate"], 2)
            r["maxGapMs"] = round(r["maxGapMs"], 1)
        return results


async def run(args, server, phases):
    scene = json.loads((PLANT / "scene.json").read_text())["id"]
    healthy = Healthy()
    await healthy.start(f"ws://127.0.0.1:{server.port}/stream", scene)
    bench = Bench(args, server, healthy, scene)
    try:
        return await bench.run(phases)
    finally:
        await healthy.stop()
        bench.pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------- output

def counts(d):
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"


def describe(r):
    """What a disturbance actually achieved, in one line."""
    d = r["disturbance"]
    name = r["phase"]
    if name == "close1000":
        return (f"{d['subscribers']} subscribers opened in {d['openSeconds']} s (not opened: {d['notOpened']}; "
                f"refusals, retried: {counts(d['openRefusals'])}; bench CPU {d['openBenchCpuS']} s); lost before the "
                f"close: {counts(d['lostBeforeClose'])}; all closed in {d['closeSeconds']} s, close codes "
                f"{counts(d['closeCodes'])}")
    if name == "annotate150":
        return (f"sent {d['sentPerSecond']}/s, notes appeared {d['notesPerSecond']}/s; of {d['sent']} sent: "
                f"{d['confirmed']} confirmed as notes, errors by code: {counts(d['errorsByCode'])}, neither: "
                f"{d['neither']}")
    unit = {"scene10": "requests", "churn100": "connections", "ingest200": "batches"}[name]
    lat = d["latencyMs"]
    return (f"{unit} done {d['donePerSecond']}/s of {d['target']}/s (issued {d['issued']}, skipped as too many in "
            f"flight {d['skipped']}; outcomes {counts(d['outcomes'])}"
            + (f"; latency p50 {lat['p50']} ms, max {lat['max']} ms" if lat else "") + ")")


def print_report(results, binary, config, seconds):
    print(f"disturbance benchmark: {binary}, reference plant, healthy client at {RATE_HZ} Hz, {seconds} s windows")
    print(f"server configuration: {json.dumps(config)}")
    print(f"goal: rate within {RATE_TOLERANCE:.0%} of undisturbed, largest gap <= {MAX_GAP_MS:.1f} ms (2 ticks), "
          f"no drop\n")
    print(f"{'phase':<12} {'frames/s':>8} {'ratio':>6} {'max gap ms':>10} {'ratio':>6} {'keyframes':>9} {'errors':>6} "
          f"{'drops':>5} {'result':>6}   CPU, % of one core: bench + healthy client / server")
    for r in results:
        c = {k: round(100 * v / seconds) for k, v in r["cpu"].items()}
        gap_ratio = "-" if r["gapRatio"] is None else f"{r['gapRatio']:.2f}"
        print(f"{r['phase']:<12} {r['rate']:>8.2f} {r['rateRatio']:>6.3f} {r['maxGapMs']:>10.1f} {gap_ratio:>6} "
              f"{r['keyframes']:>9} {r['errors']:>6} {len(r['drops']):>5} {'PASS' if r['pass'] else 'MISS':>6}   "
              f"{c['benchS']} + {c['healthyClientS']} / {c['serverS']}")
    print()
    for r in results:
        settle = r.get("settleAfterS", r.get("settleBeforeS"))
        what = describe(r) + "; " if r["phase"] != "undisturbed" else ""
        when = "after the phase" if "settleAfterS" in r else "before the window"
        print(f"{r['phase']}: {what}healthy {when} in " + (f"{settle} s" if settle is not None else
                                                             "(not within the settle timeout)")
              + (f"; drops: {', '.join(r['drops'])}" if r["drops"] else ""))


def interrupted(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so that the finally blocks stop the server and the healthy client."""
    raise KeyboardInterrupt


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=".build/release/scenestream", help="scenestream binary (relative to the repo)")
    p.add_argument("--seconds", type=float, default=8, help="length of each measured window")
    p.add_argument("--phases", default=",".join(PHASES),
                   help="disturbances to run, by name or letter a-e (undisturbed always runs first)")
    p.add_argument("--extra-rate", type=int, default=1,
                   help="frame rate (Hz) of the 1,000 extra subscribers of close1000, kept low so this process can "
                        "keep up with them")
    p.add_argument("--open-timeout", type=float, default=120, help="seconds allowed to open the 1,000 subscribers")
    p.add_argument("--settle-timeout", type=float, default=20, help="seconds allowed to recover between phases")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="one more server configuration key, e.g. --set connectionsPerSecondPerAddress=2000")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--strict", action="store_true", help="exit with 1 when a phase misses the goal")
    p.add_argument("--healthy-client", nargs=2, metavar=("URL", "SCENE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.healthy_client:
        asyncio.run(healthy_client(*args.healthy_client))
        return 0

    letters = dict(zip("abcde", PHASES))
    phases = [letters.get(x.strip(), x.strip()) for x in args.phases.split(",") if x.strip()]
    unknown = [x for x in phases if x not in PHASES]
    if unknown:
        p.error(f"unknown phase {unknown} (expected {', '.join(PHASES)} or a-e)")
    binary = os.path.abspath(ROOT / args.bin)
    if not os.path.exists(binary):
        p.error(f"{binary} does not exist (build it, or pass --bin)")
    # 1,000 subscribers and the churn need file descriptors, here and in the server (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    # Every subscriber comes from this one address into one room; HTTP ingest needs a token.
    config = {"maxConnectionsPerAddress": 5000, "roomCapacity": 5000, "ingestToken": INGEST_TOKEN}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            config[key] = json.loads(value)
        except ValueError:
            p.error(f"--set {item}: expected KEY=JSON")

    signal.signal(signal.SIGTERM, interrupted)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="scenestream-disturbance-"))
    server, results, why = Server(binary, tmp, config), None, None
    try:
        server.wait_ready()
        results = asyncio.run(run(args, server, phases))
    except KeyboardInterrupt:
        why = "interrupted"
    except Exception as e:
        why = f"failed: {e}"
    finally:
        code = server.stop()
        log = server.log_tail()
        shutil.rmtree(tmp, ignore_errors=True)
    if why or code != 0:
        print(f"disturbance benchmark {why or 'done'}; server exit status {code}, its log:\n{log}", file=sys.stderr)
    if results is None:
        return 130 if why == "interrupted" else 2
    if args.json:
        print(json.dumps({"binary": binary, "config": config, "seconds": args.seconds, "rateHz": RATE_HZ,
                          "maxGapMs": MAX_GAP_MS, "rateTolerance": RATE_TOLERANCE, "phases": results}, indent=2))
    else:
        print_report(results, binary, config, args.seconds)
    return 1 if args.strict and not all(r["pass"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
