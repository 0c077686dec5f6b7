"""Playback through the delta path: seek to a past time gives exactly the scene as it was; play reaches live."""
import asyncio
import json

import pytest

import scenestream_wire as sw
from conftest import Server
from device import Device, scene


def plant_only(nodes):
    return {i: n for i, n in nodes.items() if not n["name"].startswith("~")}


def seeks(server, source):
    want = f'scenestream_playback_seeks_total{{source="{source}"}}'
    for line in server.http("/metrics")[1].decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_seek_and_play_back_to_live(tmp_path, where):
    # disk: memory keeps only the last 1,000 updates (~2.5 s of the demo plant), so the moment sought has to be
    # rebuilt from SQLite (checkpoint + rows after it) and played from there.
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"data": str(tmp_path / "data"), **({"historyCapacity": 1000} if where == "disk" else {})}))
    server = Server("--config", str(cfg))
    try:
        async def run():
            d = await Device(server.url, "demo:ada", 2, "ada").open()
            await d.wait(lambda: len(d.frames) > 30, what="live frames")
            snap = scene(server)
            then = int(snap["timeMs"])
            recorded = plant_only({e["index"]: e for e in snap["entered"]})
            await asyncio.sleep(1.5 if where == "memory" else 6)  # let the moment age out of memory
            # Seek: the next frame is a keyframe of the scene at that time, carrying that time.
            n, o = len(d.frames), len(d.order)
            live_version = d.replica.version
            await d.send(sw.playback("seek", then))
            await d.wait(lambda: any(f[0] == "keyframe" for f in d.frames[n:]), what="playback keyframe")
            k = n + next(j for j, f in enumerate(d.frames[n:]) if f[0] == "keyframe")
            assert d.times[k] == then
            await asyncio.sleep(0.3)  # paused: nothing changes
            assert d.replica.version == d.frames[k][2]
            assert plant_only(d.replica.as_description()) == recorded
            st = [m for m in d.messages if m["type"] == "sessionState"][-1]
            assert st["playback"]["mode"] == 1 and st["playback"]["cursorMs"] == then
            # §7.8: the sessionState saying "paused" comes before the playback keyframe, whose version starts a
            # sequence of its own (not comparable with live versions).
            seq = d.order[o:]
            first_key = seq.index(next(x for x in seq if x[0] == "keyframe"))
            assert ("sessionState", 1) in seq[:first_key], seq[:first_key + 1]
            assert d.frames[k][2] < live_version, (d.frames[k][2], live_version)
            assert seeks(server, where) == 1
            # Play at 4x: frames move forward in recorded time, then the client is back live.
            n, o = len(d.frames), len(d.order)
            await d.send(sw.playback("play", 0, 4000))
            await d.wait(lambda: any(m["type"] == "sessionState" and m["playback"]["mode"] == 0 for m in d.messages[-5:]), timeout=20, what="back to live")
            played = d.times[n:]
            assert played == sorted(played)
            # Back live: "live" (mode 0) comes before a keyframe of the live scene, at a live version again.
            def live_keyframe_seen():
                seq = d.order[o:]
                return ("sessionState", 0) in seq and any(x[0] == "keyframe" for x in seq[seq.index(("sessionState", 0)):])
            await d.wait(live_keyframe_seen, what="the live keyframe")
            seq = d.order[o:]
            live_at = seq.index(("sessionState", 0))
            live_key = next(x for x in seq[live_at:] if x[0] == "keyframe")
            assert all(x[0] != "keyframe" or x[1] < live_version for x in seq[:live_at]), seq[:live_at]
            assert live_key[1] > live_version, (live_key, live_version)
            await d.wait(lambda: d.frames[-1][0] == "delta" and d.times[-1] > then + 1500, what="live deltas")
            # Outside the history: refused.
            await d.send(sw.playback("seek", 1000))
            await d.wait(lambda: d.find("error", code=18), what="unavailable")
            await d.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0
