"""The cluster on a real nats-server cluster (three servers, JetStream R3 on loopback): an owner and two fan-out
SceneStream processes, checked by the independent Python client — exact scenes on every node at the owner's
versions, zones on fan-out nodes byte by byte, a second owner refused, NATS servers lost mid-stream."""
import asyncio
import json
import subprocess
import time
import zlib

import pytest
from websockets.asyncio.client import connect

import scenestream_wire as sw
from conftest import ROOT, Server, binary
from natscluster import NATSCluster
from test_security import SECRET, jwt

ADMIN = jwt("boss", role="admin")
INGEST = "ingest-token-for-the-cluster-tests"


@pytest.fixture(scope="module")
def nats():
    c = NATSCluster(3)
    yield c
    c.stop()


def node_config(d, nats, role, node, **extra):
    cfg = d / f"{node}.json"
    cluster = {"nats": nats.urls.split(","), "role": role, "node": node, "replicas": 3, "keyframeSeconds": 2}
    cluster.update(extra)
    cfg.write_text(json.dumps({"auth": {"hs256Secret": SECRET}, "ingestToken": INGEST, "data": str(d / f"data-{node}"), "cluster": cluster}))
    return str(cfg)


@pytest.fixture(scope="module")
def nodes(nats, tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    owner = Server("--config", node_config(d, nats, "owner", "owner-1"))
    fans = [Server("--config", node_config(d, nats, "fanout", f"fan-{k}")) for k in (1, 2)]
    for f in fans:
        wait_synced(f)
    yield owner, fans, d
    for s in fans + [owner]:
        assert s.stop() == 0, s.log_tail()


def wait_synced(server, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = server.json("/healthz")
        if h.get("synced"):
            return h
        time.sleep(0.05)
    raise AssertionError("fan-out node never synced: " + server.log_tail())


def metric(server, name, default=None):
    """One value of the server's /metrics: the line `name` (with its labels, as Prometheus prints them)."""
    for line in server.http("/metrics", token=ADMIN)[1].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return default


async def follow_until(url, token, version, timeout=15, protocol=1):
    """Streams until the replica reaches `version`; returns the replica and every (inflated) body received.
    `protocol` 2 asks for range-coded frames (their string tables are plain bytes, so a byte search still works)."""
    replica, bodies = sw.Replica(), []
    async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
        await ws.send(sw.hello(token=token, max_version=protocol))
        welcome = sw.decode_server(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["version"] == protocol, welcome
        await ws.send(sw.subscribe("demo", rate=30))
        deadline = time.time() + timeout
        while (replica.version or 0) < version and time.time() < deadline:
            data = await asyncio.wait_for(ws.recv(), 5)
            bodies.append(data[2:] if not data[1] & 1 else zlib.decompressobj(-15).decompress(data[2:]))
            m = sw.decode_server(data, protocol)
            if m["type"] in ("keyframe", "delta"):
                replica.apply(m)
                await ws.send(sw.ack(m["version"]))
    return replica, bodies


def settled_scene(server, version):
    """The server's /api/scene at `version` (answers are reused for up to a second)."""
    deadline = time.time() + 5
    while time.time() < deadline:
        snap = server.json("/api/scene", token=ADMIN)
        if int(snap["version"]) == version:
            return snap
        time.sleep(0.1)
    raise AssertionError(f"/api/scene never reached {version}")


def assert_exact(owner, fans):
    """With the owner's simulator frozen, a client on each fan-out node holds exactly the owner's scene at the
    owner's version (checked node by node against the owner's /api/scene)."""
    assert owner.http("/api/simulator", json.dumps({"running": False}).encode(), token=ADMIN)[0] == 200
    try:
        version = owner.json("/api/status", token=ADMIN)["version"]
        want = {e["index"]: e for e in settled_scene(owner, version)["entered"]}
        assert len(want) > 200
        for f in fans:
            replica, _ = asyncio.run(follow_until(f.url, ADMIN, version))
            assert replica.version == version, (replica.version, version)
            got = replica.as_description()
            assert sorted(got) == sorted(want)
            for i, e in want.items():
                assert got[i] == e, (f.port, i, got[i], e)
            # The fan-out node's own view is the owner's too.
            assert {e["index"]: e for e in settled_scene(f, version)["entered"]} == want
            h = f.json("/healthz")
            assert h["role"] == "fanout" and h["lag"] == 0 and h["version"] == version and h["nats"] == "connected"
    finally:
        owner.http("/api/simulator", json.dumps({"running": True}).encode(), token=ADMIN)


def test_every_fanout_client_holds_the_owners_scene_at_the_owners_version(nodes):
    owner, fans, _ = nodes
    assert_exact(owner, fans)
    # Live again: the fan-out nodes move on with the owner.
    v0 = fans[0].json("/healthz")["version"]
    deadline = time.time() + 10
    while fans[0].json("/healthz")["version"] <= v0 + 10 and time.time() < deadline:
        time.sleep(0.1)
    assert fans[0].json("/healthz")["version"] > v0 + 10


def test_a_fanout_node_has_no_ingest_and_no_twin_state(nodes):
    _, fans, _ = nodes
    import urllib.error
    for path, body, token in (("/api/ingest", b'{"updates": []}', INGEST), ("/api/simulator", b'{"running": false}', ADMIN),
                              ("/api/twin?id=x", None, ADMIN), ("/api/twins", None, ADMIN),
                              ("/api/history?twin=hall-a/line-01/press-01&property=temperature", None, ADMIN)):
        # Authentication still comes first.
        with pytest.raises(urllib.error.HTTPError) as e:
            fans[0].http(path, body)
        assert e.value.code in (401, 403), (path, e.value.code)
        # With a token, the node says where to go.
        with pytest.raises(urllib.error.HTTPError) as e:
            fans[0].http(path, body, token=token)
        assert e.value.code == 409 and b"owner" in e.value.read(), (path, e.value.code)
    # The range history covers is the owner's (asked over NATS), for the viewer's scrubber.
    rng = fans[0].json("/api/history", token=ADMIN)
    assert rng["fromMs"] <= rng["toMs"]
    metrics = {l.split()[0]: float(l.split()[1]) for l in fans[0].http("/metrics", token=ADMIN)[1].decode().splitlines()
               if l.startswith("scenestream_cluster_")}
    assert metrics["scenestream_cluster_synced"] == 1 and metrics["scenestream_cluster_nats_connected"] == 1
    assert metrics["scenestream_cluster_commits_applied_total"] > 0 and metrics["scenestream_cluster_messages_refused_total"] == 0
    # One machine, one clock: the offset is the transit time only, and no second was counted as skewed.
    assert 0 <= metrics["scenestream_cluster_clock_offset_ms"] < 1000 and metrics["scenestream_cluster_clock_skewed_total"] == 0, metrics


def test_a_second_owner_without_standby_is_refused(nodes, nats):
    _, _, d = nodes
    p = subprocess.run(
        [binary(), "serve", "--port", "0", "--bind", "127.0.0.1", "--config", node_config(d, nats, "owner", "owner-2")],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode != 0
    assert "owned by node 'owner-1'" in p.stderr + p.stdout and "--standby" in p.stderr + p.stdout


def test_zones_hold_on_a_fanout_node(nodes):
    owner, fans, _ = nodes

    async def admin_on_owner():
        async with connect(owner.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token=ADMIN))
            assert sw.decode_server(await ws.recv())["type"] == "welcome"
            await ws.send(sw.subscribe("demo", rate=30))
            replica = sw.Replica()
            while not replica.version:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
            await ws.send(sw.presence("hall-a", head=[30000, 1700, 20000]))
            for i, n in replica.nodes.items():
                if n["name"] == "press-01" and replica.nodes[n["parent"]]["name"] == "line-02":
                    await ws.send(sw.select([i]))
                    await ws.send(sw.annotate(1, i, [0, 500, 0], "line-02 secret note"))
            await asyncio.sleep(4)

    async def run():
        admin = asyncio.create_task(admin_on_owner())
        await asyncio.sleep(1)
        version = fans[1].json("/healthz")["version"] + 60
        contractor_token = jwt("con", role="operator", zones=["hall-a-line-01"])
        # The same contractor on both frame encodings: protocol 1 (deflated) and protocol 2 (range-coded).
        contractors = await asyncio.gather(
            follow_until(fans[1].url, contractor_token, version),
            follow_until(fans[1].url, contractor_token, version, protocol=2))
        watcher = await follow_until(fans[0].url, ADMIN, fans[0].json("/healthz")["version"] + 5)
        await admin
        return contractors, watcher

    contractors, (_, admin_bodies) = asyncio.run(run())
    for replica, bodies in contractors:
        names = {n["name"] for n in replica.nodes.values()}
        assert "line-01" in names and "robot-01" in names and "line-02" not in names
        blob = b"".join(bodies)
        for secret in (b"line-02", b"~presence", b"secret note", b"agv-", b"column-"):
            assert secret not in blob, secret
    # The same data did reach the other fan-out node's admin (so the check above could have failed).
    admin_blob = b"".join(admin_bodies)
    assert b"line-02" in admin_blob and b"~presence" in admin_blob and b"secret note" in admin_blob


def test_losing_one_nats_server_of_three_keeps_the_stream_going(nodes, nats):
    owner, fans, _ = nodes

    async def rate(url, seconds):
        frames, replica = 0, sw.Replica()
        async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token=ADMIN))
            await ws.recv()
            await ws.send(sw.subscribe("demo", rate=30))
            end = time.time() + seconds
            while time.time() < end:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
                    frames += 1
                    await ws.send(sw.ack(m["version"]))
        return frames / seconds, replica.version

    before, _ = asyncio.run(rate(fans[0].url, 2))
    for k in range(3):
        nats.stop_node(k, kill=True)
        during, v = asyncio.run(rate(fans[0].url, 4))
        nats.restart_node(k)
        assert nats.wait_jetstream()
        # Frames keep coming while a server is gone (the clients' rate may dip while NATS moves the connection).
        assert during >= 0.75 * before, (k, before, during, fans[0].log_tail(2000), owner.log_tail(2000))
        assert fans[0].json("/healthz")["synced"], fans[0].log_tail()
        print(f"NATS server {k} killed: {before:.1f} frames/s before, {during:.1f} while it was gone")
    # Back to the full rate once all three are up again. CI once measured 17 frames/s in the 2-s window right after
    # the last restart (not reproduced here: 5 of 5 runs at full rate; a restarted server replays its JetStream log
    # on a 2-core machine), so the rate has three windows to come back; each window is printed.
    afters = []
    for _ in range(3):
        after, _ = asyncio.run(rate(fans[0].url, 2))
        afters.append(after)
        if after >= 0.8 * before:
            break
    print(f"after the restarts: {', '.join(f'{a:.1f}' for a in afters)} frames/s")
    assert afters[-1] >= 0.8 * before, (before, afters, fans[0].log_tail(3000), owner.log_tail(3000))
    # Nothing lost: every fan-out node still holds the owner's scene exactly.
    assert_exact(owner, fans)


MOBILE, DESKTOP = 1, 2


def test_handoff_from_the_owners_node_to_a_fanout_node_is_claimed_once_when_two_nodes_race(nodes):
    from device import Device
    owner, fans, _ = nodes

    async def run(round_):
        token = jwt(f"ada{round_}", role="operator")
        phone = await Device(owner.url, token, MOBILE, "ada-phone").open()
        await phone.wait(lambda: len(phone.frames) > 5, what="phone streaming")
        await phone.send(sw.handoff_offer(5))
        try:
            await phone.wait(lambda: phone.find("handoff", kind="offer"), what="offer")
        except AssertionError:
            raise AssertionError((phone.messages[-3:], owner.log_tail(3000)))
        code = phone.find("handoff", kind="offer")["code"]
        session_id = phone.welcome["sessionId"]
        desks = [await Device(f.url, token, DESKTOP, f"ada-desk-{k}").open(subscribe=False) for k, f in enumerate(fans)]
        # Both fan-out nodes get the same code at the same moment.
        await asyncio.gather(*(d.send(sw.handoff_claim(6, code=code)) for d in desks))
        for d in desks:
            await d.wait(lambda: d.find("handoff", kind="claimed") or d.find("error"), what="claim answered")
        winners = [d for d in desks if d.find("handoff", kind="claimed")]
        losers = [d for d in desks if d.find("error")]
        assert len(winners) == 1 and len(losers) == 1, ([d.messages for d in desks], [f.log_tail(1500) for f in fans], owner.log_tail(1500))
        assert losers[0].find("error")["code"] == 11  # handoffCodeUsed
        desk = winners[0]
        claimed = desk.find("handoff", kind="claimed")
        assert claimed["sessionId"] == session_id and claimed["from"] == MOBILE
        # A new token on the new node: the phone's no longer resumes the session.
        assert claimed["sessionToken"] and claimed["sessionToken"] != phone.welcome["sessionToken"]
        await desk.wait(lambda: len(desk.frames) > 5, what="desktop streaming")
        assert desk.frames[0][0] == "keyframe" and all(f[0] == "delta" for f in desk.frames[1:])
        # The phone, on the owner's node, is told and closed.
        try:
            await phone.wait(lambda: phone.find("handoff", kind="handedOff"), what="handedOff")
        except AssertionError:
            raise AssertionError((round_, phone.messages[-3:], owner.log_tail(2000), [f.log_tail(2000) for f in fans]))
        assert phone.find("handoff", kind="handedOff") == {"type": "handoff", "kind": "handedOff", "to": DESKTOP, "detached": True}
        await phone.wait(lambda: phone.closed is not None, what="phone closed")
        assert phone.closed == 1000
        # The code is spent everywhere.
        again = await Device(owner.url, token, DESKTOP, "ada-late").open(subscribe=False)
        await again.send(sw.handoff_claim(7, code=code))
        await again.wait(lambda: again.find("error"), what="late claim refused")
        assert again.find("error")["code"] == 11
        for d in desks + [again]:
            await d.close()

    for round_ in range(3):
        asyncio.run(run(round_))


def test_a_fanout_node_killed_its_clients_resume_on_another_with_a_delta(nodes, nats):
    from device import Device
    owner, fans, d = nodes
    doomed = Server("--config", node_config(d, nats, "fanout", "fan-doomed"))
    try:
        wait_synced(doomed)

        async def run():
            token = jwt("kim", role="operator")
            dev = await Device(doomed.url, token, DESKTOP, "kim").open()
            await dev.wait(lambda: len(dev.frames) > 15, what="streaming")
            doomed.proc.kill()
            doomed.proc.wait()
            await dev.wait(lambda: dev.closed is not None, what="connection lost")
            again = Device(fans[0].url, token, DESKTOP, "kim", resume_token=dev.welcome["sessionToken"],
                           resume_version=dev.replica.version)
            again.replica = dev.replica
            await again.open()
            assert again.welcome["type"] == "welcome" and again.welcome["sessionId"] == dev.welcome["sessionId"]
            await again.wait(lambda: len(again.frames) > 5, what="resumed streaming")
            first = again.frames[0]
            assert first[0] == "delta" and first[1] == dev.frames[-1][2], (first, dev.frames[-1])
            assert all(f[0] == "delta" for f in again.frames)
            await again.close()
            return again

        again = asyncio.run(run())
        # The node it resumed on still serves the owner's scene exactly.
        assert_exact(owner, [fans[0]])
    finally:
        doomed.stop()


def sessions_written(nats):
    """How many records the session bucket's stream has taken so far (the most any server reports)."""
    seqs = [0]
    for n in nats.nodes:
        try:
            for a in n.monitor("/jsz?streams=true").get("account_details", []):
                seqs += [st["state"]["last_seq"] for st in a.get("stream_detail", []) if st["name"] == "KV_scenestream-sessions"]
        except (OSError, ValueError, KeyError):
            pass
    return max(seqs)


def test_messages_sent_right_behind_a_resume_hello_wait_for_the_session_from_another_node(nodes, nats):
    """A resume on a node that has to look the session up in the cluster (it was made on the owner's node): the
    subscribe and ping sent right behind hello wait for that lookup and then act for the resumed session — no error,
    the pong, a delta from the resumed version, and nothing outside the contractor's zones."""
    owner, fans, _ = nodes
    token = jwt("resumer", role="operator", zones=["hall-a-line-01"])

    async def run():
        replica = sw.Replica()
        written = sessions_written(nats)
        async with connect(owner.url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            await ws.send(sw.hello(token=token))
            welcome = sw.decode_server(await ws.recv())
            await ws.send(sw.subscribe("demo", rate=30))
            frames = 0
            while frames < 5:
                m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
                    frames += 1
                    await ws.send(sw.ack(m["version"]))
        resumed_at = replica.version
        # Readiness, not time: the session record is in the bucket, and the other node holds the resumed version.
        deadline = time.time() + 10
        while time.time() < deadline and (sessions_written(nats) <= written or fans[0].json("/healthz")["version"] < resumed_at):
            await asyncio.sleep(0.05)
        assert sessions_written(nats) > written, "the owner never wrote the session record"
        got, bodies = [], []
        async with connect(fans[0].url, subprotocols=["scenestream.v1"], max_size=None) as ws:
            # All three in one go: nothing waits for the welcome.
            await ws.send(sw.hello(token=token, resume_token=welcome["sessionToken"], resume_version=resumed_at))
            await ws.send(sw.subscribe("demo", rate=30))
            await ws.send(sw.ping(4242))
            deadline = time.time() + 10
            while time.time() < deadline and not (any(m["type"] == "pong" for m in got) and len([m for m in got if m["type"] == "delta"]) >= 3):
                data = await asyncio.wait_for(ws.recv(), 5)
                bodies.append(data[2:] if not data[1] & 1 else zlib.decompressobj(-15).decompress(data[2:]))
                m = sw.decode_server(data)
                got.append(m)
                if m["type"] in ("keyframe", "delta"):
                    replica.apply(m)
                    await ws.send(sw.ack(m["version"]))
        return welcome, resumed_at, got, bodies

    welcome, resumed_at, got, bodies = asyncio.run(run())
    types = [m["type"] for m in got]
    assert types[0] == "welcome" and got[0]["sessionId"] == welcome["sessionId"], types
    assert "error" not in types, [m for m in got if m["type"] == "error"]
    assert "pong" in types
    frames = [m for m in got if m["type"] in ("keyframe", "delta")]
    assert frames and frames[0]["type"] == "delta" and frames[0]["base"] == resumed_at, frames[:1]
    assert b"line-02" not in b"".join(bodies)


def post_batches(server, stop, acked, failed):
    """Posts one-update HTTP batches until told to stop; `acked` gets the number of each batch answered 200."""
    import itertools
    import threading
    import urllib.error
    counter = itertools.count()

    def run():
        while not stop.is_set():
            n = next(counter)
            body = json.dumps({"updates": [{"twin": "probe/ingest", "property": f"b{n}", "value": n}]}).encode()
            try:
                if server.http("/api/ingest", body, token=INGEST)[0] == 200:
                    acked.add(n)
            except (urllib.error.URLError, ConnectionError, OSError):
                failed.add(n)
    threads = [threading.Thread(target=run, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    return threads


def test_owner_killed_a_standby_takes_over_within_five_seconds_versions_continue_and_no_acknowledged_ingest_is_lost(tmp_path):
    import threading
    from device import Device
    cluster = NATSCluster(3)
    servers = []
    try:
        owner = Server("--config", node_config(tmp_path, cluster, "owner", "owner-a"))
        servers.append(owner)
        standby = Server("--config", node_config(tmp_path, cluster, "owner", "owner-b", standby=True))
        servers.append(standby)
        fan = Server("--config", node_config(tmp_path, cluster, "fanout", "fan-c"))
        servers.append(fan)
        wait_synced(fan)
        h = wait_synced(standby)
        assert h["standby"] is True and h["role"] == "owner" and "owner" not in h
        # A standby takes no ingest.
        import urllib.error
        with pytest.raises(urllib.error.HTTPError) as e:
            standby.http("/api/ingest", b'{"updates": []}', token=INGEST)
        assert e.value.code == 409

        async def run():
            dev = await Device(fan.url, ADMIN, DESKTOP, "watcher").open()
            await dev.wait(lambda: len(dev.frames) > 20, what="streaming")
            # HTTP batches go to the owner without a pause, up to the moment it dies.
            posters = post_batches(owner, stop, acked, failed)
            while len(acked) < 100:
                await asyncio.sleep(0.01)
            at_kill = dev.frames[-1][2]
            owner.proc.kill()
            owner.proc.wait()
            killed = time.time()
            stop.set()
            for t in posters:
                t.join(timeout=15)
            took = None
            while time.time() - killed < 15:
                if standby.json("/healthz").get("owner") == "owner-b":
                    took = time.time() - killed
                    break
                await asyncio.sleep(0.05)
            assert took is not None, standby.log_tail()
            await dev.wait(lambda: dev.frames[-1][2] > at_kill + 30, timeout=15, what="versions continuing")
            return dev, at_kill, took, killed

        stop, acked, failed = threading.Event(), set(), set()
        dev, at_kill, took, killed = asyncio.run(run())
        print(f"standby took over {took:.2f} s after the owner was killed")
        assert took <= 5.0, took
        # One keyframe (the first frame), then only deltas — through the takeover — with versions going up.
        assert dev.frames[0][0] == "keyframe" and all(f[0] == "delta" for f in dev.frames[1:]), \
            [f for f in dev.frames if f[0] == "keyframe"]
        versions = [f[2] for f in dev.frames]
        assert versions == sorted(set(versions))
        # Every delta starts where the previous frame ended: no version was skipped over without the client.
        assert all(b == prev for (_, b, _), (_, _, prev) in zip(dev.frames[1:], dev.frames[:-1]))
        # Every batch the dead owner answered 200 is in the new owner's twins: those it had committed (the standby
        # kept them as they were logged) and those it had not (the standby applied them from the ingest log).
        deadline, have = time.time() + 5, set()
        while time.time() < deadline:
            props = standby.json("/api/twin?id=probe/ingest", token=ADMIN)["properties"]
            have = {int(k[1:]) for k in props}
            if acked <= have:
                break
            time.sleep(0.1)
        metrics = standby.http("/metrics", token=ADMIN)[1].decode()
        replayed = [line for line in metrics.splitlines() if line.startswith("scenestream_cluster_ingest_replayed")]
        print(f"{len(acked)} batches acknowledged, {len(failed)} refused by the dying owner; replayed from the log: {replayed}")
        assert len(acked) >= 100 and acked <= have, sorted(acked - have)
        # The new owner takes ingest.
        assert standby.http("/api/ingest", json.dumps({"updates": [{"twin": "line-01/press-01", "property": "temperature", "value": 50}]}).encode(),
                            token=INGEST)[0] == 200
        assert_exact(standby, [fan])
        # The new owner follows nobody: long after the last frame it heard as a standby (a fan-out node would call
        # its scene stale after 10 s), it does not.
        while time.time() < killed + 12:
            time.sleep(0.2)
        assert metric(standby, "scenestream_cluster_stale") == 0 and "stale" not in standby.json("/healthz")
    finally:
        for s in servers:
            s.stop()
        cluster.stop()


# What the plant's leaf node refuses from the cloud (README, "Edge to cloud"): ingest and command subjects, and
# forged commits. Everything the plant publishes (commits, keyframes, JetStream API) flows out.
PLANT_DENY_IMPORTS = ["scenestream.*.ingest.>", "scenestream.*.ingested", "scenestream.*.commits", "scenestream.*.keyframes",
                      "scenestream.*.alerts", "scenestream.*.active", "scenestream.*.anchors"]


def test_an_owner_behind_a_plant_leaf_node_serves_the_cloud_and_the_cloud_cannot_publish_into_the_plant(tmp_path):
    from natscluster import plant_leaf
    from natsclient import NATSClient
    cloud = NATSCluster(3, leaf_port=True)
    servers, plant, clients = [], None, []
    try:
        plant = plant_leaf(cloud.leaf_port, cloud.folder, PLANT_DENY_IMPORTS)
        cfg = tmp_path / "plant-owner.json"
        cfg.write_text(json.dumps({"auth": {"hs256Secret": SECRET}, "ingestToken": INGEST, "data": str(tmp_path / "plant-owner"),
                                   "cluster": {"nats": [plant.url], "role": "owner", "node": "plant-owner", "replicas": 3,
                                               "keyframeSeconds": 2, "domain": "cloud"}}))
        owner = Server("--config", str(cfg))
        servers.append(owner)
        fan = Server("--config", node_config(tmp_path, cloud, "fanout", "cloud-fan"))
        servers.append(fan)
        wait_synced(fan)
        assert_exact(owner, [fan])
        # The cloud publishes into the plant's ingest and commit subjects, and on a collaboration subject.
        inside = NATSClient(plant.url, "plant-side")
        clients.append(inside)
        forged = ("scenestream.demo.ingest.line-01", "scenestream.demo.commits", "scenestream.demo.anchors", "scenestream.demo.collab")
        for subject in forged:
            inside.subscribe(subject)
        inside.flush()
        outside = NATSClient(cloud.nodes[1].url, "cloud-side")
        clients.append(outside)
        # Interest crosses the leaf connection asynchronously: publish until the allowed subject arrives.
        deadline, got = time.time() + 10, []
        while time.time() < deadline:
            for subject in forged:
                outside.publish(subject, b"FORGED-" + subject.encode())
            outside.flush()
            got = [(s, p) for s, p in inside.collect(0.3) if p.startswith(b"FORGED-")]
            if any(s == "scenestream.demo.collab" for s, _ in got):
                break
        subjects = {s for s, _ in got}
        # The allowed subject arrived (so the refusal below could have failed) …
        assert "scenestream.demo.collab" in subjects, subjects
        # … the denied ones never did.
        assert not subjects & {"scenestream.demo.ingest.line-01", "scenestream.demo.commits", "scenestream.demo.anchors"}, subjects
        # And the fan-out node still holds the owner's scene: no forged commit reached it through the plant either.
        assert fan.json("/healthz")["synced"]
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()
        if plant:
            plant.stop()
        cloud.stop()


def test_malformed_and_foreign_messages_on_the_scenes_subjects_are_refused_and_counted(nodes, nats):
    from natsclient import NATSClient
    owner, fans, _ = nodes

    def refused(f):
        return metric(f, "scenestream_cluster_messages_refused_total", 0.0)

    before = [refused(f) for f in fans]
    c = NATSClient(nats.nodes[2].url, "garbage")
    try:
        # Not a frame at all; a well-formed non-frame message; a keyframe of another scene on the commits subject.
        c.publish("scenestream.demo.commits", b"\x00\x01garbage")
        c.publish("scenestream.demo.commits", b"\x01\x08" + b"\x00" * 8)  # a client's ping
        c.publish("scenestream.demo.keyframes", b"\xff" * 64)
        c.flush()
    finally:
        c.close()
    deadline = time.time() + 10
    while time.time() < deadline and not all(refused(f) >= b + 3 for f, b in zip(fans, before)):
        time.sleep(0.1)
    assert all(refused(f) >= b + 3 for f, b in zip(fans, before)), ([refused(f) for f in fans], before)
    # Nothing broke: the nodes still follow the owner exactly.
    assert_exact(owner, fans)


def test_the_owners_alerts_reach_fanout_clients_within_their_zones(nodes):
    from device import Device
    owner, fans, _ = nodes
    twin = "hall-a/line-02/press-01"

    def ingest(value):
        body = json.dumps({"updates": [{"twin": twin, "property": "temperature", "value": value}]}).encode()
        assert owner.http("/api/ingest", body, token=INGEST)[0] == 200

    assert owner.http("/api/simulator", json.dumps({"running": False}).encode(), token=ADMIN)[0] == 200
    try:
        async def run():
            admin = await Device(fans[0].url, ADMIN, DESKTOP, "alert-admin").open()
            contractor = await Device(fans[1].url, jwt("con2", role="operator", zones=["hall-a-line-01"]), DESKTOP, "con").open()
            for d in (admin, contractor):
                await d.wait(lambda: len(d.frames) > 0, what="keyframe")
            ingest(99)
            await admin.wait(lambda: any(r["state"] == 0 and "press-01" in r["message"] for m in admin.messages if m["type"] == "alerts"
                                         for r in m["alerts"]), what="alert raised on a fan-out node")
            raised = next(r for m in admin.messages if m["type"] == "alerts" for r in m["alerts"] if r["state"] == 0 and twin in r["message"])
            # Pinned to the press, by the index the fan-out node's own scene has for it.
            from device import path
            assert raised["node"] is not None and path(admin.replica, raised["node"]) == twin
            # A client that subscribes now hears of it too (the fan-out node keeps the owner's active alerts).
            late = await Device(fans[1].url, ADMIN, DESKTOP, "late").open()
            await late.wait(lambda: any(twin in r["message"] for m in late.messages if m["type"] == "alerts" for r in m["alerts"]),
                            what="active alert for a late subscriber")
            ingest(50)
            await admin.wait(lambda: any(r["state"] == 1 and twin in r["message"] for m in admin.messages if m["type"] == "alerts"
                                         for r in m["alerts"]), what="alert cleared")
            await asyncio.sleep(0.5)
            # The contractor's zones do not include line 2: it heard nothing of it.
            assert not any(twin in r["message"] for m in contractor.messages if m["type"] == "alerts" for r in m["alerts"])
            for d in (admin, contractor, late):
                await d.close()

        asyncio.run(run())
    finally:
        owner.http("/api/simulator", json.dumps({"running": True}).encode(), token=ADMIN)


def test_the_owners_anchors_reach_fanout_clients_and_are_set_only_on_the_owner(nodes):
    from device import Device
    from test_reload import request
    owner, fans, _ = nodes
    body = {"position": [1.5, 0, 2], "handles": {"openxr": "0d3c2b1a-9f8e-4d7c-b6a5-1234567890ab", "marker": "qr:hall-a"}}

    async def run():
        headset = await Device(fans[0].url, ADMIN, 1, "anchor-headset", max_version=3).open()
        contractor = await Device(fans[1].url, jwt("con3", role="operator", zones=["hall-a-line-01"]), DESKTOP, "anchor-con", max_version=3).open()
        for d in (headset, contractor):
            await d.wait(lambda: d.anchors is not None, what="anchors after subscribe")
        status, text = request(fans[0], "PUT", "/api/anchors/hall-a", body, ADMIN)
        assert status == 409 and b"owner" in text, text
        assert request(owner, "PUT", "/api/anchors/hall-a", body, ADMIN)[0] == 200
        for d in (headset, contractor):  # the hall's root is the contractor's line's ancestor: its anchor is theirs too
            await d.wait(lambda: [(a["id"], a["position"]) for a in d.anchors] == [("hall-a", [1500, 0, 2000])], what="the owner's anchor")
        listed = json.loads(request(fans[1], "GET", "/api/anchors", token=ADMIN)[1])["anchors"]
        assert listed[0]["registered"] and listed[0]["position"] == [1.5, 0, 2] and listed[0]["handles"] == body["handles"]
        assert request(owner, "DELETE", "/api/anchors/hall-a", token=ADMIN)[0] == 200
        await headset.wait(lambda: headset.anchors == [], what="the removal on the fan-out node")
        for d in (headset, contractor):
            await d.close()

    asyncio.run(run())


def test_presence_selection_and_annotations_from_fanout_nodes_reach_every_node_through_the_owner(nodes, nats):
    """Collaboration across nodes: what a user on one fan-out node does reaches a user on another through the owner's
    scene (one path: the commit stream), under the owner's rules; a fan-out node cannot lend anyone more rights."""
    from device import Device
    from natsclient import NATSClient
    owner, fans, _ = nodes
    robot, press = "hall-a/line-01/robot-01", "hall-a/line-02/press-01"

    def owner_counts():
        return {n: metric(owner, n, 0.0) for n in ("scenestream_cluster_messages_refused_total", "scenestream_cluster_collaboration_applied_total")}

    async def run():
        alice = await Device(fans[0].url, jwt("alice", role="operator", zones=["hall-a-line-01"], name="Alice"), DESKTOP, "alice").open()
        watcher = await Device(fans[1].url, ADMIN, DESKTOP, "watcher").open()
        on_owner = await Device(owner.url, ADMIN, DESKTOP, "on-owner").open()
        viewer = await Device(fans[0].url, jwt("vic", role="viewer"), DESKTOP, "viewer").open()
        for d in (alice, watcher, on_owner, viewer):
            await d.wait(lambda: len(d.frames) > 0, what="keyframe")
        target = alice.index_of(robot)
        assert target is not None and alice.index_of(press) is None  # her zone only
        await alice.send(sw.presence("hall-a", head=[3000, 1700, 9000]))
        await alice.send(sw.select([target]))
        await alice.send(sw.annotate(11, target, [0, 800, 0], "gripper worn (from fan-1)"))
        for d in (watcher, on_owner):
            await d.wait(lambda: "~presence.hall-a/alice/head" in d.paths() and f"{robot}/~sel-alice" in d.paths()
                         and any(n["label"] == "gripper worn (from fan-1)" for n in d.replica.nodes.values()), what="alice's presence, selection, note")
        # The name tag rides on the head (where her camera is), not on the group at the anchor's origin.
        assert watcher.paths()["~presence.hall-a/alice/head"]["label"] == "Alice"
        assert watcher.paths()["~presence.hall-a/alice"]["label"] == ""
        # Alice sees her own marks too: they come back through the commit stream to her node.
        await alice.wait(lambda: f"{robot}/~sel-alice" in alice.paths(), what="alice's own selection marker")
        # A viewer may not annotate, whichever node it is on.
        await viewer.send(sw.annotate(12, target, [0, 0, 0], "viewer note"))
        await viewer.wait(lambda: viewer.find("error", requestId=12) is not None, what="viewer refused")
        assert viewer.find("error", requestId=12)["code"] == 6  # forbidden
        # The owner keeps the annotation limits for users of every node (5 a second per user, bursts of 20): a burst
        # of 30 is cut, and the refusals come back to alice's own requests from the owner.
        for k in range(30):
            await alice.send(sw.annotate(100 + k, target, [0, 0, 0], f"burst {k}"))
        await alice.wait(lambda: any(m["type"] == "error" and m["code"] == 7 and m["requestId"] >= 100 for m in alice.messages),
                         what="rate limit answered by the owner")
        # She leaves: her avatar and marker leave every node's scene.
        await alice.close()
        await watcher.wait(lambda: not any(p.startswith("~presence.hall-a/alice") or p.endswith("~sel-alice") for p in watcher.paths()),
                           what="alice's presence gone")
        notes = [n for n in watcher.replica.nodes.values() if n["label"] == "gripper worn (from fan-1)"]
        assert len(notes) == 1  # notes stay
        return watcher, on_owner, viewer

    before = owner_counts()
    watcher, on_owner, viewer = asyncio.run(run())
    assert not any(n["label"] == "viewer note" for n in watcher.replica.nodes.values())
    bursts = sum(1 for n in watcher.replica.nodes.values() if n["label"].startswith("burst "))
    assert 1 <= bursts < 30, bursts

    # A NATS peer forges acts as a fan-out node would, for a user of line 1: the owner checks zones itself.
    forger = NATSClient(nats.nodes[1].url, "forger")
    try:
        forger.subscribe("scenestream.demo.collab.answers.forger")
        forger.flush()
        scene = owner.json("/api/scene", token=ADMIN)
        by_path = {}
        for e in scene["entered"]:
            parent = next((p for p, i in by_path.items() if i == e["parent"]), None) if e["parent"] is not None else None
            by_path[f"{parent}/{e['name']}" if parent else e["name"]] = e["index"]
        secret = by_path[press]

        def act(message, request=0):
            import base64
            return {"session": "forged-1", "connection": 5, "user": "mallory", "name": "Mallory", "role": 1,
                    "zones": ["hall-a-line-01"], "device": 2, "message": base64.b64encode(message).decode()}
        batch = {"node": "forger", "acts": [act(sw.select([secret])), act(sw.annotate(21, secret, [0, 0, 0], "forged note in line 2"))], "left": []}
        forger.publish("scenestream.demo.collab", json.dumps(batch).encode())
        forger.publish("scenestream.demo.collab", b"{not json")
        forger.publish("scenestream.demo.collab", json.dumps({"node": "forger", "acts": [dict(act(b""), message="AAAA")], "left": []}).encode())
        forger.flush()
        answers = []
        deadline = time.time() + 10
        while time.time() < deadline and len(answers) < 2:
            answers = [json.loads(p) for s, p in forger.collect(0.3) if s.endswith(".answers.forger")]
        assert sorted(a["requestId"] for a in answers) == [0, 21], answers
        assert all(a["code"] == 14 and "not in your view" in a["message"] and a["connection"] == 5 for a in answers), answers
    finally:
        forger.close()
    after = owner_counts()
    assert after["scenestream_cluster_messages_refused_total"] >= before["scenestream_cluster_messages_refused_total"] + 2
    assert after["scenestream_cluster_collaboration_applied_total"] >= before["scenestream_cluster_collaboration_applied_total"] + 4
    # The scene after the acts were answered (so after any change they could have made) has none of them.
    v = owner.json("/api/status", token=ADMIN)["version"]
    deadline = time.time() + 5
    while int((final := owner.json("/api/scene", token=ADMIN))["version"]) <= v and time.time() < deadline:
        time.sleep(0.1)
    assert int(final["version"]) > v
    names = {e["name"] for e in final["entered"]}
    labels = {e.get("label") for e in final["entered"]}
    assert "~sel-mallory" not in names and "forged note in line 2" not in labels and "Mallory" not in labels


def test_playback_on_a_fanout_node_reads_the_owners_history_within_the_users_zones(nodes):
    """A fan-out node holds no twins: a seek there asks the owner for the state at that moment and plays the
    updates after it from the owner's history, through the node's own delta path and the client's zones."""
    from device import Device
    from test_playback import plant_only
    owner, fans, _ = nodes

    def seeks(f):
        return metric(f, 'scenestream_playback_seeks_total{source="owner"}', 0.0)

    async def run():
        admin = await Device(fans[0].url, ADMIN, DESKTOP, "pb-admin").open()
        contractor = await Device(fans[0].url, jwt("con4", role="operator", zones=["hall-a-line-01"]), DESKTOP, "pb-con").open()
        for d in (admin, contractor):
            await d.wait(lambda: len(d.frames) > 10, what="live frames")
        snap = owner.json("/api/scene", token=ADMIN)
        then = int(snap["timeMs"])
        recorded = plant_only({e["index"]: e for e in snap["entered"]})
        await asyncio.sleep(1.5)  # the scene moves on (the simulator runs)
        assert plant_only({e["index"]: e for e in owner.json("/api/scene", token=ADMIN)["entered"]}) != recorded
        before = seeks(fans[0])
        marks = {}
        for d in (admin, contractor):
            marks[d.name] = len(d.frames)
            await d.send(sw.playback("seek", then))
        for d in (admin, contractor):
            await d.wait(lambda: any(f[0] == "keyframe" for f in d.frames[marks[d.name]:]), what="playback keyframe")
        k = marks["pb-admin"] + next(j for j, f in enumerate(admin.frames[marks["pb-admin"]:]) if f[0] == "keyframe")
        assert admin.times[k] == then
        await asyncio.sleep(0.3)
        assert plant_only(admin.replica.as_description()) == recorded
        assert seeks(fans[0]) == before + 2
        # The contractor's past is her zones' only.
        names = {n["name"] for n in contractor.replica.nodes.values()}
        assert "line-01" in names and "line-02" not in names
        # Play at 4x from the owner's updates: forward in recorded time, then live again.
        n, m0 = len(admin.frames), len(admin.messages)
        await admin.send(sw.playback("play", 0, 4000))
        await admin.wait(lambda: any(m["type"] == "sessionState" and m["playback"]["mode"] == 0 for m in admin.messages[m0:]),
                         timeout=20, what="back to live")
        played = admin.times[n:]
        assert len(played) > 5 and played == sorted(played) and played[-1] > then + 1000
        # Outside the owner's history: refused, with where it starts.
        await admin.send(sw.playback("seek", 1000))
        await admin.wait(lambda: admin.find("error", code=18), what="unavailable")
        for d in (admin, contractor):
            await d.close()

    asyncio.run(run())


def test_with_all_nats_down_fanout_clients_are_told_the_scene_is_stale_and_it_recovers_by_itself(nodes, nats):
    """Runs last in this module: it stops the whole NATS cluster. A fan-out node keeps serving the last scene and
    tells every client — whatever its zones — with an alert, says so in /healthz and /metrics, and when NATS is back
    it follows the owner again by itself and clears the alert."""
    from device import Device
    owner, fans, _ = nodes

    def stale_gauge(f):
        return metric(f, "scenestream_cluster_stale")

    def stale_alerts(d, state):
        return [r for m in d.messages if m["type"] == "alerts" for r in m["alerts"] if r["id"] == "cluster/stale" and r["state"] == state]

    async def run():
        admin = await Device(fans[0].url, ADMIN, DESKTOP, "stale-admin").open()
        contractor = await Device(fans[1].url, jwt("con3", role="operator", zones=["hall-a-line-01"]), DESKTOP, "stale-con").open()
        for d in (admin, contractor):
            await d.wait(lambda: len(d.frames) > 0, what="keyframe")
        assert stale_gauge(fans[0]) == 0 and not fans[0].json("/healthz")["stale"]
        for k in range(len(nats.nodes)):
            nats.stop_node(k, kill=True)
        for d in (admin, contractor):
            await d.wait(lambda: stale_alerts(d, 0), timeout=15, what="stale alert")
        raised = stale_alerts(admin, 0)[0]
        assert raised["message"].startswith("(stale) data as of ") and "NATS is unreachable" in raised["message"], raised
        h = fans[0].json("/healthz")
        assert h["stale"] and h["nats"] == "reconnecting" and stale_gauge(fans[0]) == 1
        # Still serving: a client that connects now gets the last scene, and the alert with it.
        late = await Device(fans[1].url, ADMIN, DESKTOP, "stale-late").open()
        await late.wait(lambda: len(late.frames) > 0 and stale_alerts(late, 0), what="last scene and stale alert")
        stale_version = h["version"]
        # NATS back (all three on their ports and storage): the nodes recover by themselves.
        for n in nats.nodes:
            n.start()
        for n in nats.nodes:
            assert n.wait_ready(), n.log_text()[-800:]
        assert nats.wait_jetstream(timeout=60)
        for d in (admin, contractor, late):
            await d.wait(lambda: stale_alerts(d, 1), timeout=30, what="stale alert cleared")
        await admin.wait(lambda: admin.frames[-1][2] > stale_version + 5, timeout=30, what="the owner's versions again")
        for d in (admin, contractor, late):
            await d.close()

    asyncio.run(run())
    for f in fans:
        h = wait_synced(f, timeout=30)
        assert not h["stale"] and stale_gauge(f) == 0
    assert_exact(owner, fans)
