"""Every path to the data holds the same rules as the stream (issue 11, findings 1, 2, 4, 9, 10, 12): HTTP routes
take the stream's bearer JWT and its zones, plant files and metrics are not anonymous, simulator control is for
admins and JSON only, token claims are checked with checked arithmetic, served files never leave their folders,
and malformed HTTP and WebSocket handshakes are refused with a status."""
import asyncio
import json
import shutil
import socket
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import scenestream_wire as sw
from conftest import ROOT, Server
from test_security import SECRET, jwt, sign as signed

METRICS_TOKEN = "metrics-token-for-the-scraper"
INGEST_TOKEN = "ingest-token-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    d = tmp_path_factory.mktemp("guarded")
    # A served folder of our own, with links that point outside it: to / and to the server's configuration.
    assets = d / "assets"
    for sub in ("web", "models", "plants/demo"):
        shutil.copytree(ROOT / "Assets" / sub, assets / sub)
    cfg = d / "config.json"
    cfg.write_text(json.dumps({
        "auth": {"hs256Secret": SECRET}, "metricsToken": METRICS_TOKEN, "ingestToken": INGEST_TOKEN,
        "assets": str(assets), "data": str(d / "data"), "httpBodySeconds": 2,
        "connectionsPerSecondPerAddress": 1000, "connectionBurstPerAddress": 1000}))
    (assets / "web" / "leak").symlink_to("/")
    (assets / "web" / "settings.json").symlink_to(cfg)
    (assets / "models" / "settings.json").symlink_to(cfg)
    s = Server("--config", str(cfg))
    yield s
    assert s.stop() == 0


def get(server, path, token=None, method="GET", body=None, content_type=None):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except (ConnectionError, urllib.error.URLError) as e:
        # Refused before HTTP (headers over the limit): the connection closes without an answer.
        return 0, str(e).encode(), {}


ADMIN = jwt("boss", role="admin")
OPERATOR = jwt("op", role="operator")
CONTRACTOR = jwt("con", role="operator", zones=["hall-a-line-01"])


@pytest.mark.parametrize("path", ["/api/scene", "/api/twin?id=hall-a/line-01/press-01", "/api/status", "/api/twins",
                                  "/api/history", "/api/history?twin=hall-a/line-01/press-01&property=temperature",
                                  "/assets/plants/demo/scene.json", "/assets/plants/demo/twins.json", "/metrics",
                                  "/api/plant/scene.json", "/api/plant/bindings.json", "/api/anchors"])
def test_nothing_of_the_plant_without_credentials(guarded, path):
    status, body, headers = get(guarded, path)
    assert status == 401, (path, status, body[:200])
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert b"press" not in body and b"nodes" not in body
    # A wrongly signed token is no better.
    status, _, _ = get(guarded, path, token=jwt("boss", role="admin", secret="x" * 40))
    assert status == 401


def test_plant_files_and_anchors_hold_roles_and_zones_over_http(guarded):
    # Reading plant files is for admins; writing them and anchors for admins with every zone. Nothing here writes:
    # every request is refused before the body is looked at.
    body = json.dumps({"bindings": []}).encode()
    for token in (OPERATOR, CONTRACTOR):
        assert get(guarded, "/api/plant/bindings.json", token)[0] == 403
        assert get(guarded, "/api/plant/bindings.json", token, method="PUT", body=body)[0] == 403
        assert get(guarded, "/api/anchors/hall-a", token, method="PUT", body=b'{"position": [0, 0, 0]}')[0] == 403
        assert get(guarded, "/api/anchors/hall-a", token, method="DELETE")[0] == 403
    zoned_admin = jwt("zadmin", role="admin", zones=["hall-a-line-01"])
    # The files describe every zone: a zone-limited admin reads /api/scene (filtered), not them.
    status, reply, _ = get(guarded, "/api/plant/scene.json", zoned_admin)
    assert status == 403 and b"every zone" in reply, reply
    assert get(guarded, "/api/plant/scene.json", zoned_admin, method="HEAD")[0] == 403
    assert get(guarded, "/api/plant/bindings.json", ADMIN, method="HEAD")[0] == 200
    status, reply, _ = get(guarded, "/api/plant/rules.json", zoned_admin, method="PUT", body=body)
    assert status == 403 and b"every zone" in reply, reply
    status, reply, _ = get(guarded, "/api/anchors/hall-a", zoned_admin, method="PUT", body=b'{"position": [0, 0, 0]}')
    assert status == 403 and b"whole site" in reply, reply
    assert get(guarded, "/api/anchors/hall-a", method="PUT", body=b'{"position": [0, 0, 0]}')[0] == 401
    # Only the plant's own files, by name: no path leaves the folder.
    for path in ("/api/plant/config.json", "/api/plant/dtdl/x.json", "/api/plant/..%2fconfig.json"):
        assert get(guarded, path, ADMIN)[0] == 404, path
    assert get(guarded, "/api/plant/scene.json", ADMIN, method="PUT", body=body)[0] == 405
    # Anyone who may see the scene reads the anchors; a contractor only its roots' ones.
    assert get(guarded, "/api/anchors", OPERATOR)[0] == 200
    assert [a["id"] for a in json.loads(get(guarded, "/api/anchors", CONTRACTOR)[1])["anchors"]] == ["hall-a"]


def test_healthz_says_only_that_it_is_up(guarded):
    status, body, _ = get(guarded, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_plant_files_and_metrics_need_their_keys(guarded):
    for path in ("/assets/plants/demo/scene.json", "/assets/plants/demo/twins.json"):
        assert get(guarded, path, CONTRACTOR)[0] == 403
        assert get(guarded, path, OPERATOR)[0] == 403
        status, body, _ = get(guarded, path, ADMIN)
        assert status == 200 and b"hall-a" in body
    assert get(guarded, "/metrics", OPERATOR)[0] == 403
    status, body, _ = get(guarded, "/metrics", METRICS_TOKEN)
    assert status == 200 and b"scenestream_frames_sent_total" in body
    assert get(guarded, "/metrics", ADMIN)[0] == 200
    # The viewer and the models stay open: a browser needs them before it has a token.
    assert get(guarded, "/")[0] == 200
    assert get(guarded, "/assets/models/robot-base.gltf")[0] == 200


def test_a_zone_token_sees_only_its_zone_over_http(guarded):
    status, body, _ = get(guarded, "/api/scene", ADMIN)
    assert status == 200
    everything = json.loads(body)
    status, body, _ = get(guarded, "/api/scene", CONTRACTOR)
    assert status == 200
    mine = json.loads(body)
    names = {n.get("name") for n in mine["entered"]}
    all_names = {n.get("name") for n in everything["entered"]}
    assert "line-01" in names and "line-02" not in names, sorted(names)[:20]
    assert "line-02" in all_names  # so the check above could fail
    assert len(mine["entered"]) < len(everything["entered"])
    assert b"line-02" not in body and b"agv-" not in body
    # Twins: one bound to a node of its zone is shown, one of another zone does not exist for it.
    # The simulator's first values of the press come within its update period: wait for them as an admin sees them.
    deadline = time.monotonic() + 10
    while get(guarded, "/api/twin?id=hall-a/line-01/press-01", ADMIN)[0] != 200:
        assert time.monotonic() < deadline, "the press never got a value"
        time.sleep(0.05)
    st, bd, _ = get(guarded, "/api/twin?id=hall-a/line-01/press-01", CONTRACTOR)
    assert st == 200, bd
    status, body, _ = get(guarded, "/api/twin?id=hall-a/line-02/press-01", CONTRACTOR)
    assert status == 404 and b"temperature" not in body
    assert get(guarded, "/api/twin?id=hall-a/line-02/press-01", ADMIN)[0] == 200
    # The twin list and the history hold to the same zones.
    mine = [t["id"] for t in json.loads(get(guarded, "/api/twins", CONTRACTOR)[1])["twins"]]
    every = [t["id"] for t in json.loads(get(guarded, "/api/twins", ADMIN)[1])["twins"]]
    assert mine and all(t.startswith("hall-a/line-01/") for t in mine) and len(mine) < len(every)
    history = "/api/history?property=temperature&points=10&twin="
    assert get(guarded, history + "hall-a/line-01/press-01", CONTRACTOR)[0] == 200
    status, body, _ = get(guarded, history + "hall-a/line-02/press-01", CONTRACTOR)
    assert status == 404 and b"points" not in body
    assert get(guarded, history + "hall-a/line-02/press-01", ADMIN)[0] == 200


def test_status_is_narrowed_to_what_the_token_may_see(guarded):
    admin = json.loads(get(guarded, "/api/status", ADMIN)[1])
    mine = json.loads(get(guarded, "/api/status", CONTRACTOR)[1])
    assert "clients" in admin and "subscribed" in admin  # so the checks below could fail
    assert "clients" not in mine and "subscribed" not in mine and "uptimeSeconds" not in mine
    assert 0 < mine["nodes"] < admin["nodes"]
    far = signed({"sub": "far", "role": "operator", "aud": "scenestream", "exp": int(time.time()) + 600, "scenes": ["another-plant"]})
    elsewhere = json.loads(get(guarded, "/api/status", far)[1])
    assert "scene" not in elsewhere and "nodes" not in elsewhere


def test_only_admins_control_the_simulator_and_only_with_json(guarded):
    body = json.dumps({"running": False}).encode()
    # A cross-site "simple" POST (text/plain, no preflight), with no token or with one, does nothing.
    assert get(guarded, "/api/simulator", method="POST", body=body, content_type="text/plain")[0] == 401
    assert get(guarded, "/api/simulator", ADMIN, method="POST", body=body, content_type="text/plain")[0] == 415
    assert get(guarded, "/api/simulator", OPERATOR, method="POST", body=body, content_type="application/json")[0] == 403
    assert get(guarded, "/api/status", ADMIN)[0] == 200
    v0 = json.loads(get(guarded, "/api/status", ADMIN)[1])["version"]
    time.sleep(0.3)
    assert json.loads(get(guarded, "/api/status", ADMIN)[1])["version"] > v0, "the plant kept running"
    status, reply, _ = get(guarded, "/api/simulator", ADMIN, method="POST", body=body, content_type="application/json")
    assert status == 200 and json.loads(reply) == {"running": False}
    get(guarded, "/api/simulator", ADMIN, method="POST", body=json.dumps({"running": True}).encode(), content_type="application/json")


def claims(**over):
    p = {"sub": "ada", "exp": int(time.time()) + 600, "aud": "scenestream", "role": "operator"}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


BAD_CLAIMS = {
    "huge-exp": claims(exp=18_000_000_000_000_000),
    "enormous-exp": claims(exp=1e300),
    "nbf-in-the-future": claims(nbf=int(time.time()) + 3600),
    "empty-sub": claims(sub=""),
    "no-sub": claims(sub=None),
    "unknown-role": claims(role="superuser"),
    "10kb-sub": claims(sub="a" * 10_000),
}


@pytest.mark.parametrize("name", sorted(BAD_CLAIMS))
def test_bad_claims_are_refused_on_every_path(guarded, name):
    token = signed(BAD_CLAIMS[name])

    async def hello():
        async with connect(guarded.url, subprotocols=["scenestream.v1"]) as ws:
            await ws.send(sw.hello(token=token))
            return sw.decode_server(await asyncio.wait_for(ws.recv(), 10))

    reply = asyncio.run(hello())
    assert reply["type"] == "error" and reply["code"] == 5, reply
    # Over HTTP: 401, or for a token too large for the header limit (8 KiB) a closed connection.
    assert get(guarded, "/api/status", token)[0] in ((401, 0) if len(token) > 8000 else (401,))
    # The server is still there for everyone else (a huge exp used to kill it).
    assert get(guarded, "/healthz")[0] == 200
    assert asyncio.run(welcome(guarded, ADMIN)) == "welcome"


async def welcome(server, token):
    async with connect(server.url, subprotocols=["scenestream.v1"]) as ws:
        await ws.send(sw.hello(token=token))
        return sw.decode_server(await asyncio.wait_for(ws.recv(), 10))["type"]


@pytest.mark.parametrize("path", ["/leak/etc/passwd", "/leak/etc/hostname", "/settings.json", "/assets/models/settings.json",
                                  "/%2e%2e/config.json", "/assets/..%2f..%2fconfig.json"])
def test_served_files_never_leave_their_folder(guarded, path):
    status, body, _ = get(guarded, path, ADMIN)
    assert status in (403, 404), (path, status)
    assert SECRET.encode() not in body and INGEST_TOKEN.encode() not in body and b"root:" not in body


def raw(server, data, wait=5.0, trickle=None):
    """Sends raw bytes; returns the first line of the answer ('' if the server closed without one) and the time."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(wait)
    t0 = time.time()
    out = b""
    try:
        s.sendall(data)
        if trickle:
            for b in trickle:
                time.sleep(0.5)
                s.sendall(bytes([b]))
        while b"\r\n" not in out:
            d = s.recv(4096)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out.split(b"\r\n")[0].decode(errors="replace"), time.time() - t0


def status_of(line):
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def ingest_body(twin):
    return json.dumps({"updates": [{"twin": twin, "property": "temperature", "value": 1}]}).encode()


def test_conflicting_content_lengths_are_not_accepted(guarded):
    body = ingest_body("hall-a/line-01/press-01")
    req = (f"POST /api/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST_TOKEN}\r\n"
           f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 7}\r\n\r\n").encode() + body
    line, _ = raw(guarded, req)
    assert status_of(line) in (None, 400), line  # refused: a status or a closed connection, never 2xx
    req = (f"POST /api/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST_TOKEN}\r\n"
           f"Content-Length: 12x\r\n\r\n").encode() + body
    assert status_of(raw(guarded, req)[0]) in (None, 400)


def test_a_slow_body_times_out(guarded):
    req = (f"POST /api/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST_TOKEN}\r\n"
           f"Content-Length: 100\r\n\r\n").encode()
    # One byte every half second: the body never completes; the server gives up after httpBodySeconds (2).
    line, took = raw(guarded, req, wait=15, trickle=b"x" * 24)
    assert status_of(line) != 200 and took < 10, (line, took)


def test_huge_headers_are_refused(guarded):
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 20_000 + b"\r\n\r\n"
    line, _ = raw(guarded, req)
    assert status_of(line) != 200, line


@pytest.mark.parametrize("twin,why", [("a\u0000b", "control character"), ("x" * 100_000, "longer than 256")])
def test_ingest_refuses_bad_twin_ids(guarded, twin, why):
    status, body, _ = get(guarded, "/api/ingest", INGEST_TOKEN, method="POST", body=ingest_body(twin), content_type="application/json")
    assert status == 400 and why in body.decode(), body[:200]


HANDSHAKE = ("{method} {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: {key}\r\n{version}Sec-WebSocket-Protocol: scenestream.v1\r\n\r\n")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize("case,method,path,key,version,expected", [
    ("good", "GET", "/stream", KEY, "13", 101),
    ("version-8", "GET", "/stream", KEY, "8", 426),
    ("version-99", "GET", "/stream", KEY, "99", 426),
    ("no-version", "GET", "/stream", KEY, None, 426),
    ("short-key", "GET", "/stream", "c2hvcnQ=", "13", 400),
    ("post", "POST", "/stream", KEY, "13", 400),
    ("other-path", "GET", "/streamx", KEY, "13", 404),
])
def test_websocket_handshakes(guarded, case, method, path, key, version, expected):
    v = f"Sec-WebSocket-Version: {version}\r\n" if version is not None else ""
    line, _ = raw(guarded, HANDSHAKE.format(method=method, path=path, key=key, version=v).encode())
    assert status_of(line) == expected, (case, line)
