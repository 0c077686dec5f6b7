"""Plant data in: MQTT through a real broker (mosquitto), HTTP ingest, staleness while the broker is away, and
durability across kill -9."""
import asyncio
import json
import signal
import urllib.error
import urllib.request

import pytest

from broker import Broker
from conftest import Server
from device import Device


def start_server(tmp_path, broker_port, **extra):
    cfg = {"simulator": False, "data": str(tmp_path / "data"), "ingestToken": "t0ken",
           "mqtt": {"port": broker_port, "alertsTopic": "scenestream-events/alerts"}}
    cfg.update(extra)
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg))
    return Server("--config", str(f))


def metric(server, name):
    for line in server.http("/metrics")[1].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def label(d, path):
    i = d.index_of(path)
    return d.replica.nodes[i]["label"] if i is not None else None


def test_mqtt_reaches_the_replica_and_survives_the_broker_going_away(tmp_path):
    broker = Broker()
    server = start_server(tmp_path, broker.port)
    try:
        async def run():
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            temp = "hall-a/line-01/press-01/temp"
            # Alerts go out to MQTT for the platform below: listen before the value that raises one.
            import shutil, subprocess
            sub = subprocess.Popen([shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                                    "-t", "scenestream-events/alerts/#", "-C", "1", "-W", "20"], stdout=subprocess.PIPE, text=True)
            await asyncio.sleep(0.3)
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", "93.4")
            await d.wait(lambda: label(d, temp) == "93 °C", what="number payload in the replica")
            alert = json.loads(sub.communicate(timeout=25)[0])
            assert alert["rule"] == "press-overheat" and alert["state"] == "raised" and alert["twin"] == "hall-a/line-01/press-01"
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", json.dumps({"value": 71.6, "quality": "good"}))
            await d.wait(lambda: label(d, temp) == "72 °C", what="JSON payload in the replica")
            # Bad messages are counted and dropped; ingest goes on.
            before = metric(server, "scenestream_ingest_rejected_total")
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", "not-a-number{")
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", json.dumps({"temperature": 5}))
            await d.wait(lambda: metric(server, "scenestream_ingest_rejected_total") >= before + 2, what="rejections counted")
            # The twin-key rules hold on MQTT as on HTTP: a 300-byte twin id is refused, counted as bad_key, and the
            # values after it still arrive.
            bad_key = 'scenestream_ingest_refused_total{source="mqtt",reason="bad_key"}'
            broker.publish("scenestream/" + "x" * 300 + "/temperature", "50")
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", "75")
            await d.wait(lambda: metric(server, bad_key) == 1, what="long twin id refused as bad_key")
            await d.wait(lambda: label(d, temp) == "75 °C", what="the next value after the refused one")
            with pytest.raises(urllib.error.HTTPError) as refused:
                server.http("/api/twin?id=" + "x" * 300)
            assert refused.value.code == 404  # no such twin was made
            # An alert from the rule goes out to MQTT too (events out) — it is raised above 90.
            # The broker goes away: the client sees staleness, not frozen values.
            broker.stop()
            await d.wait(lambda: (label(d, temp) or "").endswith("(stale)"), timeout=15, what="stale label")
            press = d.replica.nodes[d.index_of("hall-a/line-01/press-01")]
            assert press["color"] == 0x7F7F7FFF
            assert metric(server, "scenestream_mqtt_connected") == 0
            # It comes back: ingest resumes.
            broker.start()
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, timeout=40, what="reconnected")
            broker.publish("scenestream/hall-a/line-01/press-01/temperature", "64")
            await d.wait(lambda: label(d, temp) == "64 °C", what="fresh value after the broker came back")
            await d.close()

        asyncio.run(run())
    finally:
        server.stop()
        broker.close()


def post(server, body, token="t0ken"):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/ingest", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_ingest_is_authenticated_validated_and_durable_across_kill_9(tmp_path):
    broker = Broker()
    server = start_server(tmp_path, broker.port)
    acked = {}
    try:
        assert post(server, {"updates": []}, token=None)[0] == 401
        assert post(server, {"updates": []}, token="wrong")[0] == 401
        assert post(server, {"nope": 1})[0] == 400
        status, body = post(server, {"updates": [{"twin": "x", "value": 1}]})
        assert status == 400 and b"updates[0]" in body
        # Batches of increasing values; then kill -9 while they are still coming.
        for k in range(60):
            batch = [{"twin": f"line/pump-{i}", "property": "flow", "value": k * 10 + i, "timestamp": 1_700_000_000_000 + k} for i in range(20)]
            status, body = post(server, {"updates": batch})
            assert status == 200 and json.loads(body)["durable"] is True
            for u in batch:
                acked[u["twin"]] = u["value"]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    finally:
        server.stop()
    server = start_server(tmp_path, broker.port)
    try:
        for twin, value in acked.items():
            got = server.json(f"/api/twin?id={twin}")["properties"]["flow"]["value"]
            assert got == value, (twin, got, value)
    finally:
        server.stop()
        broker.close()
