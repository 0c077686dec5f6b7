#!/usr/bin/env python3
"""Viewer benchmark: opens the web viewer in headless Chromium (software GL) against a real server and prints, for
the demo and the reference plant: JavaScript ms per frame and per second, frames drawn per second, draw calls, and
the times first load → drawn, take-over → drawn, seek → drawn, reconnect → live.

    python3 Tests/web/bench_viewer.py [--plants demo,reference] [--seconds 5] [--json]

Uses SCENESTREAM_RELEASE_BIN (else .build/release/scenestream). Numbers, not pass/fail: goals are in issue 15 and
the closing notes compare against them."""
import argparse
import asyncio
import json
import os
import pathlib
import signal
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
os.environ.setdefault("SCENESTREAM_BIN", str(ROOT / ".build" / "release" / "scenestream"))
os.environ.setdefault("SCENESTREAM_RELEASE_BIN", str(ROOT / ".build" / "release" / "scenestream"))

from cdp import Browser  # noqa: E402
from conftest import Server, release_binary  # noqa: E402

GOALS = {"jsMsPerFrame": 8, "drawCalls": 100, "firstLoadS": 1.5, "takeOverS": 1.0, "seekS": 0.5}


async def timed(page, expr, timeout=60):
    t0 = time.monotonic()
    await page.wait(expr, timeout=timeout, what=expr)
    return time.monotonic() - t0


async def bench(plant, seconds, tmp):
    args = [] if plant == "demo" else ["--plant", f"Assets/plants/{plant}"]
    data = pathlib.Path(tmp) / f"data-{plant}"
    server = Server("--data", str(data), *args, exe=release_binary())
    port = server.port
    expected = 200 if plant == "demo" else 9000
    out = {"plant": plant}
    b = Browser()
    try:
        await b.start()
        url = f"http://127.0.0.1:{port}/?user=bench"
        t0 = time.monotonic()
        page = await b.open(url)
        await page.wait(f"window.sceneStream && sceneStream.drawn > {expected} && sceneStream.stats().drawCalls > 0", timeout=90, what="drawn")
        out["firstLoadS"] = round(time.monotonic() - t0, 2)
        tl = await page.eval("sceneStream.timeline")
        out["webglContextS"] = round((tl["rendererMs"] - tl["moduleMs"]) / 1000, 2)
        await page.wait("sceneStream.fps > 0 || true", what="settle")
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(1.0)
            samples.append(await page.eval("sceneStream.stats()"))
        last = samples[-1]
        out["nodes"] = last["nodes"]
        out["drawCalls"] = last["drawCalls"]
        out["triangles"] = last.get("triangles")
        out["fps"] = round(statistics.mean(s["fps"] for s in samples), 1)
        js = [s["jsMsPerFrame"] for s in samples if s["fps"] > 0]
        out["jsMsPerFrame"] = round(statistics.median(js), 2) if js else None
        draw = [s["drawMsPerFrame"] for s in samples if s["fps"] > 0]
        out["drawMsPerFrame"] = round(statistics.median(draw), 2) if draw else None
        out["jsMsPerSecond"] = round(statistics.mean(s["jsMsPerSecond"] for s in samples), 1)
        # JavaScript per stream frame: main-thread JS per second over the frames the server sent (30 Hz).
        out["jsMsPer30HzFrame"] = round(out["jsMsPerSecond"] / 30, 2)
        out["labelsInDom"] = last["labelsInDom"]

        # Take-over: another viewer, already open and drawn, types the code the first one offers and presses
        # "Take over"; timed from the click to the session's full scene drawn there.
        other = await b.open(f"http://127.0.0.1:{port}/?user=bench")
        await other.wait(f"window.sceneStream && sceneStream.drawn > {expected} && sceneStream.stats().drawCalls > 0", timeout=90, what="second viewer")
        await page.front()
        await page.click("#offer")
        code = await page.wait("sceneStream.offer && sceneStream.offer.code", what="offer")
        await other.front()
        await other.type("#claim-code", code)
        keyframes = await other.eval("sceneStream.keyframes")
        t0 = time.monotonic()
        await other.click("#claim")
        await other.wait(f"sceneStream.claimed && sceneStream.keyframes > {keyframes} && sceneStream.drawn > {expected} && sceneStream.stats().drawCalls > 0",
                         timeout=60, what="claimed and drawn")
        out["takeOverS"] = round(time.monotonic() - t0, 3)

        # Seek: into the past, until the past scene is drawn.
        seeks = []
        for k in range(3):
            keyframes = await other.eval("sceneStream.keyframes")
            t0 = time.monotonic()
            # 30 s back, or half way into the history there is (a server just started has little).
            await other.eval(f"sceneStream.seek(Date.now() - Math.min({30_000 + k * 5000}, (Date.now() - sceneStream.history.fromMs) / 2))")
            await other.wait(f"sceneStream.keyframes > {keyframes} && sceneStream.stats().past", timeout=30, what="seek drawn")
            seeks.append(time.monotonic() - t0)
        out["seekS"] = round(statistics.median(seeks), 3)
        await other.eval("document.getElementById('live').click()")
        await other.wait("sceneStream.stats().past === null", what="live")

        # Reconnect: the server is killed and started again on its port; time from its restart to live frames.
        server.proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        await other.wait("!sceneStream.stats().connected", timeout=10, what="stale")
        out["staleShownS"] = round(time.monotonic() - t0, 3)
        server.stop()
        server = Server("--data", str(data), *args, "--port", str(port), exe=release_binary())
        t0 = time.monotonic()
        v = await other.eval("sceneStream.version")
        await other.wait(f"sceneStream.stats().connected && sceneStream.version !== {json.dumps(v)}", timeout=30, what="live again")
        out["reconnectS"] = round(time.monotonic() - t0, 2)
    finally:
        b.close()
        server.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plants", default="demo,reference")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import tempfile
    tmp = tempfile.mkdtemp(prefix="scenestream-bench-viewer-")
    results = [asyncio.run(bench(p, a.seconds, tmp)) for p in a.plants.split(",")]
    if a.json:
        print(json.dumps({"goals": GOALS, "results": results}, indent=1))
        return
    keys = ["nodes", "drawCalls", "triangles", "fps", "jsMsPerFrame", "drawMsPerFrame", "jsMsPerSecond", "jsMsPer30HzFrame", "labelsInDom",
            "firstLoadS", "webglContextS", "takeOverS", "seekS", "staleShownS", "reconnectS"]
    print(f"{'':18}" + "".join(f"{r['plant']:>12}" for r in results) + f"{'goal (reference)':>18}")
    for k in keys:
        goal = GOALS.get(k)
        print(f"{k:18}" + "".join(f"{str(r.get(k)):>12}" for r in results) + (f"{'≤ ' + str(goal):>18}" if goal else ""))


if __name__ == "__main__":
    main()
