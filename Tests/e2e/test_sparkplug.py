"""Sparkplug B through a real broker (mosquitto): births and aliased data reach a client's replica; data before
birth and seq gaps ask the edge node for a rebirth; deaths show staleness; the host's STATE is online while
SceneStream runs and offline after it stops (cleanly or by kill -9). Plus QoS 1 redeliveries dropped and a durable
MQTT session that delivers what was published while SceneStream was down."""
import asyncio
import json
import signal
import time

import paho.mqtt.client as mqtt

import sparkplug as sp
from broker import Broker
from conftest import Server
from device import Device
from test_ingest import label, metric

PRESS = "hall-a/line-01/press-01"
TEMP = PRESS + "/temp"


def refused(server, source, reason):
    want = f'scenestream_ingest_refused_total{{source="{source}",reason="{reason}"}}'
    for line in server.http("/metrics")[1].decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[1])
    return 0.0


def start(tmp_path, broker, mqtt_extra=None, name="config.json"):
    m = {"port": broker.port, "sparkplug": {"groups": ["hall-a"], "hostId": "scenestream-test", "rebirthIntervalMs": 0}}
    m.update(mqtt_extra or {})
    f = tmp_path / name
    f.write_text(json.dumps({"simulator": False, "data": str(tmp_path / "data"), "mqtt": m}))
    return Server("--config", str(f))


def is_rebirth(cmd):
    topic, data, _ = cmd
    p = sp.decode(data)
    m = sp.decode(p[2][0])
    return topic == "spBv1.0/hall-a/NCMD/line-01" and m[1] == [b"Node Control/Rebirth"] and m[4] == [sp.BOOLEAN] and m[14] == [1]


def test_sparkplug_births_data_gaps_and_deaths(tmp_path):
    broker = Broker()
    server = start(tmp_path, broker)
    edge = None
    try:
        async def run():
            nonlocal edge
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            state = json.loads(sp.retained(broker.port, "spBv1.0/STATE/scenestream-test"))
            assert state["online"] is True and state["timestamp"] > 0
            edge = sp.EdgeNode(broker.port, "hall-a", "line-01")

            # Data before any birth: dropped, counted, and the node is asked to rebirth.
            edge.ddata("press-01", [sp.metric(alias=1, value=50.0)], seq=7)
            assert is_rebirth(edge.command())
            await d.wait(lambda: refused(server, "sparkplug", "data_before_birth") >= 1, what="counted")

            # Births (names, aliases, datatypes, values), then data by alias.
            edge.nbirth([sp.metric("speed", alias=100, datatype=sp.DOUBLE, value=1.0)])
            edge.dbirth("press-01", [sp.metric("temperature", alias=1, datatype=sp.DOUBLE, value=55.2),
                                     sp.metric("cycle", alias=2, datatype=sp.INT64, value=12)])
            await d.wait(lambda: label(d, TEMP) == "55 °C", what="DBIRTH value in the replica")
            edge.ddata("press-01", [sp.metric(alias=1, value=71.6)])
            await d.wait(lambda: label(d, TEMP) == "72 °C", what="DDATA by alias in the replica")
            assert server.json(f"/api/twin?id={PRESS}")["properties"]["cycle"]["value"] == 12

            # A seq gap: the value still counts, and a rebirth is requested.
            edge.seq = (edge.seq + 3) % 256
            edge.ddata("press-01", [sp.metric(alias=1, value=80.4)])
            assert is_rebirth(edge.command())
            await d.wait(lambda: label(d, TEMP) == "80 °C", what="value after the gap")
            assert refused(server, "sparkplug", "sequence_gap") >= 1

            # Bad input: not protobuf, a wrong type for the alias, an unknown alias. Ingest goes on.
            edge.publish(edge.topic("DDATA", "press-01"), b"\xff\xff\xff")
            edge.ddata("press-01", [sp.metric(alias=1, value="hot", datatype=sp.STRING), sp.metric(alias=99, value=1.0)])
            edge.ddata("press-01", [sp.metric(alias=1, value=66.0)])
            await d.wait(lambda: label(d, TEMP) == "66 °C", what="ingest continues after bad input")
            assert refused(server, "sparkplug", "malformed_payload") >= 1
            assert refused(server, "sparkplug", "wrong_type") >= 1
            assert refused(server, "sparkplug", "unknown_alias") >= 1

            # DDEATH: stale, not frozen. A new DBIRTH: fresh.
            edge.ddeath("press-01")
            await d.wait(lambda: (label(d, TEMP) or "").endswith("(stale)"), what="stale after DDEATH")
            assert d.replica.nodes[d.index_of(PRESS)]["color"] == 0x7F7F7FFF
            edge.dbirth("press-01", [sp.metric("temperature", alias=1, datatype=sp.DOUBLE, value=64.0)])
            await d.wait(lambda: label(d, TEMP) == "64 °C", what="fresh after a new DBIRTH")

            # A quick reconnect: DDEATH and DBIRTH back to back (often in one tick) leave the device fresh.
            edge.ddeath("press-01")
            edge.dbirth("press-01", [sp.metric("temperature", alias=1, datatype=sp.DOUBLE, value=58.0)])
            await d.wait(lambda: label(d, TEMP) == "58 °C", what="fresh after a death and a birth back to back")

            # NDEATH (the node's will, here sent by hand) makes the node's devices stale too.
            edge.ndeath()
            await d.wait(lambda: (label(d, TEMP) or "").endswith("(stale)"), what="stale after NDEATH")
            await d.close()

        asyncio.run(run())
        # Someone says we are offline (a stale will): SceneStream says online again.
        edge.c.publish("spBv1.0/STATE/scenestream-test", json.dumps({"online": False, "timestamp": 1}), qos=1, retain=True).wait_for_publish(timeout=10)
        deadline = time.time() + 10
        while json.loads(sp.retained(broker.port, "spBv1.0/STATE/scenestream-test"))["online"] is not True:
            assert time.time() < deadline, "STATE not restored to online"
        # kill -9: the broker publishes SceneStream's will, STATE offline (retained).
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        state = json.loads(sp.retained(broker.port, "spBv1.0/STATE/scenestream-test"))
        assert state["online"] is False
        # Back up, then a clean stop: online again, then offline said before disconnecting.
        server = start(tmp_path, broker)
        # The MQTT connection is made in the background: wait for the birth (STATE online) it publishes.
        deadline = time.time() + 10
        while json.loads(sp.retained(broker.port, "spBv1.0/STATE/scenestream-test"))["online"] is not True:
            assert time.time() < deadline, "STATE online never published after the restart"
            time.sleep(0.05)
        server.stop()
        assert server.proc.returncode == 0
        assert json.loads(sp.retained(broker.port, "spBv1.0/STATE/scenestream-test"))["online"] is False
    finally:
        if edge:
            edge.close()
        server.stop()
        broker.close()


def test_qos1_redelivery_is_dropped_and_a_durable_session_keeps_what_came_while_down(tmp_path):
    broker = Broker()
    durable = {"clientId": "scenestream-durable", "cleanSession": False, "qos": 1}
    server = start(tmp_path, broker, durable)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plant-gateway")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        async def wait_connected(srv):
            for _ in range(400):
                if metric(srv, "scenestream_mqtt_connected") == 1:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("broker not connected")

        asyncio.run(wait_connected(server))
        topic = f"scenestream/{PRESS}/temperature"
        msg = json.dumps({"value": 61.0, "timestamp": 1_800_000_000_000})
        pub.publish(topic, msg, qos=1).wait_for_publish(timeout=10)
        # The same message again (what a QoS 1 redelivery looks like): applied once, the copy counted.
        pub.publish(topic, msg, qos=1).wait_for_publish(timeout=10)

        async def wait_dup(srv):
            for _ in range(400):
                if metric(srv, "scenestream_ingest_duplicates_total") >= 1:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("duplicate not counted")

        asyncio.run(wait_dup(server))
        assert server.json(f"/api/twin?id={PRESS}")["properties"]["temperature"]["value"] == 61.0

        # SceneStream goes away; the broker keeps its session and queues QoS 1 messages for it.
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        pub.publish(topic, json.dumps({"value": 77.0, "timestamp": 1_800_000_001_000}), qos=1).wait_for_publish(timeout=10)
        server = start(tmp_path, broker, durable, name="config2.json")

        async def wait_value(srv):
            for _ in range(400):
                props = srv.json(f"/api/twin?id={PRESS}").get("properties", {})
                if props.get("temperature", {}).get("value") == 77.0:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("queued message not delivered after restart")

        asyncio.run(wait_value(server))
    finally:
        pub.loop_stop()
        pub.disconnect()
        server.stop()
        broker.close()
