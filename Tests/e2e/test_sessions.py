"""Shared sessions and handoff against the real server: rooms, presence, annotations, handoff, refusals, resume."""
import asyncio
import json

import pytest

import scenestream_wire as sw
from conftest import Server
from device import Device, pause, scene

HEADSET, DESKTOP, MOBILE = 1, 2, 3


def server_with(tmp_path, **cfg):
    cfg.setdefault("data", str(tmp_path / "data"))
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg))
    return Server("--config", str(f))


def test_room_presence_and_annotations_survive_restart(tmp_path):
    server = server_with(tmp_path)
    try:
        async def run():
            ada_desk = await Device(server.url, "demo:ada:host", DESKTOP, "ada-desktop").open()
            ada_set = await Device(server.url, "demo:ada:host", HEADSET, "ada-headset").open()
            lin = await Device(server.url, "demo:lin:participant", MOBILE, "lin-phone").open()
            devices = [ada_desk, ada_set, lin]
            for d in devices:
                await d.wait(lambda d=d: d.replica.version is not None, what="keyframe")
            # Everyone is in the room: three sessions, two users.
            await lin.wait(lambda: len(lin.members) == 3, what="3 members")
            assert sorted((m["userId"], m["device"]) for m in lin.members) == [("ada", HEADSET), ("ada", DESKTOP), ("lin", MOBILE)]
            # The headset's head pose shows up for the others, as a node in their replicas.
            for _ in range(5):
                await ada_set.send(sw.presence("hall-a", head=[1500, 1700, 2500]))
                await asyncio.sleep(0.05)
            head = "~presence.hall-a/ada/head"
            for d in (ada_desk, lin):
                await d.wait(lambda d=d: head in d.paths(), what="ada's head")
                assert d.paths()[head]["translation"] == [1500, 1700, 2500]
            await lin.send(sw.presence("hall-a", head=[9000, 1600, 4000]))
            await ada_set.wait(lambda: "~presence.hall-a/lin/head" in ada_set.paths(), what="lin's head")
            # Ada annotates a robot; it appears for all.
            robot = ada_desk.index_of("hall-a/line-01/robot-02")
            assert robot is not None
            await ada_desk.send(sw.annotate(1, robot, [0, 300, 0], "Gripper slips"))
            for d in devices:
                await d.wait(lambda d=d: any(p.startswith("hall-a/line-01/robot-02/~note-") for p in d.paths()), what="note")
            note = next(n for p, n in lin.paths().items() if "/~note-" in p)
            assert note["label"] == "Gripper slips" and note["translation"] == [0, 300, 0]
            # Selection is shared as a marker under the selected node.
            await lin.send(sw.select([robot]))
            await ada_set.wait(lambda: "hall-a/line-01/robot-02/~sel-lin" in ada_set.paths(), what="selection marker")
            for d in devices:
                await d.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0

    # A restart keeps the annotation.
    server = server_with(tmp_path)
    try:
        notes = [e for e in scene(server)["entered"] if e["name"].startswith("~note-")]
        assert len(notes) == 1 and notes[0]["label"] == "Gripper slips"

        async def after():
            d = await Device(server.url, "demo:lin", MOBILE, "lin").open()
            await d.wait(lambda: any("/~note-" in p for p in d.paths()), what="note after restart")
            await d.close()

        asyncio.run(after())
    finally:
        assert server.stop() == 0


def test_handoff_mid_stream(tmp_path):
    server = server_with(tmp_path)
    try:
        async def run():
            phone = await Device(server.url, "demo:ada", MOBILE, "ada-phone", rate=60).open()
            lin = await Device(server.url, "demo:lin", DESKTOP, "lin").open()
            await phone.wait(lambda: len(phone.frames) > 10, what="phone streaming")
            await phone.send(sw.presence("hall-a", head=[1000, 1600, 1000]))
            await phone.send(sw.handoff_offer(5))
            await phone.wait(lambda: phone.find("handoff", kind="offer"), what="offer")
            offer = phone.find("handoff", kind="offer")
            assert len(offer["code"]) == 9 and offer["url"].endswith(offer["code"])
            session_id = phone.welcome["sessionId"]

            desk = await Device(server.url, "demo:ada", DESKTOP, "ada-desktop", rate=60).open(subscribe=False)
            await desk.send(sw.handoff_claim(6, code=offer["code"].lower().replace("-", "")))
            await desk.wait(lambda: desk.find("handoff", kind="claimed"), what="claimed")
            claimed = desk.find("handoff", kind="claimed")
            assert claimed["sessionId"] == session_id and claimed["from"] == MOBILE
            assert claimed["sessionToken"] == phone.welcome["sessionToken"]
            # The new device starts from a keyframe of the same interest and carries on with deltas.
            await desk.wait(lambda: len(desk.frames) > 10, what="desktop streaming")
            assert desk.frames[0][0] == "keyframe" and all(f[0] == "delta" for f in desk.frames[1:])
            versions = [f[2] for f in desk.frames]
            assert versions == sorted(set(versions)), "no frame applied twice"
            # It got the session's view state: same session, the viewpoint the phone had.
            st = [m for m in desk.messages if m["type"] == "sessionState"][-1]
            assert st["sessionId"] == session_id and st["viewpoint"]["position"] == [1000, 1600, 1000]
            # The old device is told and detached.
            await phone.wait(lambda: phone.find("handoff", kind="handedOff"), what="handedOff")
            assert phone.find("handoff", kind="handedOff") == {"type": "handoff", "kind": "handedOff", "to": DESKTOP, "detached": True}
            await phone.wait(lambda: phone.closed is not None, what="phone closed")
            assert phone.closed == 1000
            assert phone.frames[-1][2] <= desk.frames[0][2]
            # Room members saw a device switch, never a leave.
            ada_devices = [[x["device"] for x in members if x["userId"] == "ada"] for members in lin.member_history]
            first = next(k for k, d in enumerate(ada_devices) if d)
            assert all(len(d) == 1 for d in ada_devices[first:]), ada_devices
            assert ada_devices[-1] == [DESKTOP] and MOBILE in ada_devices[first]
            # Freeze the plant: the new device's replica equals the server's scene.
            pause(server)
            await asyncio.sleep(0.2)
            snap = scene(server)
            target = int(snap["version"])
            await desk.wait(lambda: desk.replica.version == target, what="catch up")
            got = desk.replica.as_description()
            want = {e["index"]: e for e in snap["entered"]}
            assert got == want
            pause(server, running=True)
            for d in (desk, lin):
                await d.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0


def test_a_handoff_during_playback_keeps_watching_the_same_moment(tmp_path):
    """The phone watches the past, paused; the desktop that claims the session gets the same moment (a sessionState
    saying paused at that cursor, then a keyframe carrying that time). A device that resumes is live."""
    server = server_with(tmp_path)
    try:
        async def run():
            phone = await Device(server.url, "demo:ada", MOBILE, "ada-phone").open()
            await phone.wait(lambda: len(phone.frames) > 20, what="phone streaming")
            then = phone.times[5]
            await phone.send(sw.playback("seek", then))
            await phone.wait(lambda: any(m["type"] == "sessionState" and m["playback"]["mode"] == 1 for m in phone.messages),
                             what="phone paused in the past")
            await phone.send(sw.handoff_offer(5))
            await phone.wait(lambda: phone.find("handoff", kind="offer"), what="offer")
            code = phone.find("handoff", kind="offer")["code"]
            desk = await Device(server.url, "demo:ada", DESKTOP, "ada-desktop").open(subscribe=False)
            await desk.send(sw.handoff_claim(6, code=code))
            await desk.wait(lambda: any(m["type"] == "sessionState" and m["playback"]["mode"] == 1 for m in desk.messages),
                            what="desktop paused in the past")
            st = next(m for m in desk.messages if m["type"] == "sessionState" and m["playback"]["mode"] == 1)
            assert st["playback"]["cursorMs"] == then
            await desk.wait(lambda: any(t == then for t in desk.times), what="a frame of that moment")
            at = desk.order.index(("sessionState", 1))
            keys = [x for x in desk.order[at:] if x[0] == "keyframe"]
            assert keys, desk.order
            await asyncio.sleep(0.3)
            assert desk.times[-1] == then, "paused: the desktop stays at the moment"
            # Resuming the session from a new connection starts live, and its sessionState says so.
            token = desk.find("handoff", kind="claimed")["sessionToken"]
            await desk.close()
            back = await Device(server.url, "demo:ada", DESKTOP, "ada-again", resume_token=token).open()
            await back.wait(lambda: any(m["type"] == "sessionState" for m in back.messages) and len(back.frames) > 3, what="resumed")
            assert all(m["playback"]["mode"] == 0 for m in back.messages if m["type"] == "sessionState")
            assert back.times[-1] > then
            await back.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0


def test_pull_handoff(tmp_path):
    server = server_with(tmp_path)
    try:
        async def run():
            phone = await Device(server.url, "demo:ada", MOBILE, "ada-phone").open()
            await phone.wait(lambda: len(phone.frames) > 3)
            desk = await Device(server.url, "demo:ada", DESKTOP, "ada-desktop").open(subscribe=False)
            await desk.send(sw.list_sessions(1))
            await desk.wait(lambda: desk.find("handoff", kind="sessions"))
            listed = desk.find("handoff", kind="sessions")["sessions"]
            assert [(x["sessionId"], x["device"]) for x in listed] == [(phone.welcome["sessionId"], MOBILE)]
            await desk.send(sw.handoff_claim(2, session_id=listed[0]["sessionId"]))
            await desk.wait(lambda: len(desk.frames) > 3, what="frames after pull")
            assert desk.find("handoff", kind="claimed")["sessionId"] == phone.welcome["sessionId"]
            await phone.wait(lambda: phone.closed is not None)
            assert phone.find("handoff", kind="handedOff")["to"] == DESKTOP
            await desk.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0


def test_refusals(tmp_path):
    server = server_with(tmp_path, handoffCodeSeconds=1)
    try:
        async def run():
            ada = await Device(server.url, "demo:ada", MOBILE, "ada").open()
            await ada.wait(lambda: ada.replica.version is not None, what="keyframe")
            # Another user's code.
            await ada.send(sw.handoff_offer(1))
            await ada.wait(lambda: ada.find("handoff", kind="offer"))
            code = ada.find("handoff", kind="offer")["code"]
            eve = await Device(server.url, "demo:eve", DESKTOP, "eve").open(subscribe=False)
            await eve.send(sw.handoff_claim(2, code=code))
            await eve.wait(lambda: eve.find("error", requestId=2))
            assert eve.find("error", requestId=2)["code"] == 9
            # A pull of another user's session.
            await eve.send(sw.handoff_claim(3, session_id=ada.welcome["sessionId"]))
            await eve.wait(lambda: eve.find("error", requestId=3))
            assert eve.find("error", requestId=3)["code"] == 9
            # A reused code: the first claim wins, the second is refused.
            desk = await Device(server.url, "demo:ada", DESKTOP, "ada-desk").open(subscribe=False)
            await desk.send(sw.handoff_claim(4, code=code))
            await desk.wait(lambda: desk.find("handoff", kind="claimed"))
            again = await Device(server.url, "demo:ada", HEADSET, "ada-set").open(subscribe=False)
            await again.send(sw.handoff_claim(5, code=code))
            await again.wait(lambda: again.find("error", requestId=5))
            assert again.find("error", requestId=5)["code"] == 11
            # An expired code.
            await desk.send(sw.handoff_offer(6))
            await desk.wait(lambda: desk.find("handoff", kind="offer", requestId=6))
            late = desk.find("handoff", kind="offer", requestId=6)["code"]
            await asyncio.sleep(1.3)
            await again.send(sw.handoff_claim(7, code=late))
            await again.wait(lambda: again.find("error", requestId=7))
            assert again.find("error", requestId=7)["code"] == 10
            # An unknown code, and guessing is rate-limited.
            for k in range(12):
                await eve.send(sw.handoff_claim(100 + k, code="ZZZZ-ZZZZ"))
            await eve.wait(lambda: eve.find("error", requestId=111))
            codes = [eve.find("error", requestId=100 + k)["code"] for k in range(12)]
            assert codes[:8] == [9] * 8 and codes[-1] == 7, codes
            # A viewer cannot annotate.
            viewer = await Device(server.url, "demo:vic:viewer", DESKTOP, "vic").open()
            await viewer.wait(lambda: viewer.replica.version is not None)
            await viewer.send(sw.annotate(8, 5, [0, 0, 0], "nope"))
            await viewer.wait(lambda: viewer.find("error", requestId=8))
            assert viewer.find("error", requestId=8)["code"] == 6
            # A token the server does not accept.
            bad = await Device(server.url, "forged-token", DESKTOP, "bad").open()
            assert bad.welcome["type"] == "error" and bad.welcome["code"] == 5
            for d in (desk, again, eve, viewer):
                await d.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("inside", [True, False])
def test_resume(tmp_path, inside):
    # Outside the window: 10 versions are a third of a second at 30 Hz.
    server = server_with(tmp_path, retainedVersions=300 if inside else 10)
    try:
        async def run():
            d = await Device(server.url, "demo:ada", MOBILE, "ada", rate=60).open()
            await d.wait(lambda: len(d.frames) > 10)
            token, version = d.welcome["sessionToken"], d.replica.version
            d.acks = True
            await d.ws.close()  # the connection drops
            await d.task
            await asyncio.sleep(0.1 if inside else 1.0)
            r = Device(server.url, "demo:ada", MOBILE, "ada-again", rate=60, resume_token=token, resume_version=version)
            r.replica = d.replica  # the client keeps its replica across the reconnect
            await r.open()
            assert r.welcome["sessionId"] == d.welcome["sessionId"]
            await r.wait(lambda: len(r.frames) > 3)
            kind, base, _ = r.frames[0]
            if inside:
                assert kind == "delta" and base == version
            else:
                assert kind == "keyframe"
            pause(server)
            await asyncio.sleep(0.2)
            snap = scene(server)
            await r.wait(lambda: r.replica.version == int(snap["version"]))
            assert r.replica.as_description() == {e["index"]: e for e in snap["entered"]}
            pause(server, running=True)
            await r.close()

        asyncio.run(run())
    finally:
        assert server.stop() == 0


def test_sessions_survive_kill_9(tmp_path):
    """A session's identity, token and interest are on disk: after kill -9 and a restart, another device of the
    user pulls it with the same interest (layers), and the first device resumes it with its token."""
    server = server_with(tmp_path)
    try:
        async def run():
            phone = await Device(server.url, "demo:ada", MOBILE, "ada-phone", layers=("structure", "vehicles")).open()
            await phone.wait(lambda: phone.index_of("hall-a/agv-01") is not None, what="vehicles in view")
            assert phone.index_of("hall-a/line-01/press-01") is None  # not on the layer asked for
            return phone.welcome["sessionId"], phone.welcome["sessionToken"]

        sid, token = asyncio.run(run())
        server.proc.send_signal(9)
        server.proc.wait()
    finally:
        server.stop()
    server = server_with(tmp_path)
    try:
        async def after():
            desk = await Device(server.url, "demo:ada", DESKTOP, "ada-desktop").open(subscribe=False)
            await desk.send(sw.list_sessions(1))
            await desk.wait(lambda: desk.find("handoff", kind="sessions"))
            listed = desk.find("handoff", kind="sessions")["sessions"]
            assert [(x["sessionId"], x["device"]) for x in listed] == [(sid, MOBILE)]
            await desk.send(sw.handoff_claim(2, session_id=sid))
            await desk.wait(lambda: desk.find("handoff", kind="claimed"), what="claimed")
            # The claimed session streams the interest it had before the restart: vehicles, not presses.
            await desk.wait(lambda: desk.index_of("hall-a/agv-01") is not None, what="restored interest")
            assert desk.index_of("hall-a/line-01/press-01") is None
            assert desk.frames[0][0] == "keyframe"
            # The phone comes back with its old token: same session (it takes it over from the desk).
            phone = await Device(server.url, "demo:ada", MOBILE, "ada-phone", resume_token=token, resume_version=123,
                                 layers=("structure", "vehicles")).open()
            assert phone.welcome["sessionId"] == sid
            await phone.wait(lambda: len(phone.frames) > 0)
            assert phone.frames[0][0] == "keyframe"  # versions of the old process mean nothing now
            await desk.wait(lambda: desk.closed is not None, what="desk replaced")
            await phone.close()

        asyncio.run(after())
    finally:
        assert server.stop() == 0
