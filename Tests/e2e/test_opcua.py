"""OPC UA PubSub (JSON over MQTT, OPC 10000-14) through a real mosquitto, published by `opcua_pubsub.py` — a
publisher written from the specification, not from SceneStream's code: values, source timestamps and status codes
reach a client's replica; sequence gaps and malformed messages are counted by reason; a gateway that goes quiet
goes stale by age."""
import asyncio
import json
import time
from datetime import datetime, timezone

import opcua_pubsub as ua
from broker import Broker
from conftest import Server
from device import Device
from test_ingest import label, metric

PRESS1, PRESS2 = "hall-a/line-01/press-01", "hall-a/line-01/press-02"


def refused(server, reason):
    return metric(server, f'scenestream_ingest_refused_total{{source="opcua",reason="{reason}"}}')


def start(tmp_path, broker, staleness=None):
    cfg = {"simulator": False, "data": str(tmp_path / "data"), "mqtt": {"port": broker.port, "opcua": {"map": [
        {"publisher": "gw1", "writer": "press-01", "field": "Temperature", "twin": PRESS1, "property": "temperature", "periodMs": 200},
        {"publisher": "gw1", "writer": "press-02", "twin": PRESS2, "property": "{field}"},
    ]}}}
    if staleness:
        cfg["staleness"] = staleness
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg))
    return Server("--config", str(f))


def test_opcua_values_timestamps_status_and_refusals_reach_the_replica(tmp_path):
    broker = Broker()
    server = start(tmp_path, broker)
    pub = None
    try:
        async def run():
            nonlocal pub
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            pub = ua.Publisher(broker.port, "gw1", "line-01")
            # Metadata first (retained, as Part 14 says), then a key frame with a plain field.
            pub.publish_metadata("press-01", [("Temperature", "Double"), ("Running", "Boolean")])
            pub.publish_data("press-01", {"Temperature": 93.4})
            temp1 = PRESS1 + "/temp"
            await d.wait(lambda: label(d, temp1) == "93 °C", what="a plain field in the replica")

            # A DataValue: its SourceTimestamp (not the DataSetMessage's Timestamp) is the value's time.
            src_ms = int(time.time() * 1000) + 5
            src = datetime.fromtimestamp(src_ms // 1000, timezone.utc).replace(microsecond=src_ms % 1000 * 1000)
            pub.publish_data("press-01", {"Temperature": ua.DataValue(71.6, source_timestamp=ua.iso_time(src))},
                             timestamp=ua.iso_time(time.time() - 10))
            await d.wait(lambda: label(d, temp1) == "72 °C", what="a DataValue")
            t = server.json(f"/api/twin?id={PRESS1}")["properties"]["temperature"]
            assert t["timestamp"] == src_ms and t["quality"] == "good", t

            # Status codes: Uncertain is shown like stale, Bad as bad; a Good value clears them.
            now = ua.iso_time()
            pub.publish_data("press-01", {"Temperature": ua.DataValue(70.0, status=ua.UNCERTAIN_LAST_USABLE_VALUE, source_timestamp=now)})
            await d.wait(lambda: label(d, temp1) == "70 °C (uncertain)", what="uncertain status")
            assert server.json(f"/api/twin?id={PRESS1}")["properties"]["temperature"]["quality"] == "uncertain"
            pub.publish_data("press-01", {"Temperature": ua.DataValue(69.0, status=ua.BAD_COMMUNICATION_ERROR, source_timestamp=ua.iso_time())})
            await d.wait(lambda: (label(d, temp1) or "").endswith("(bad)"), what="bad status")
            assert d.replica.nodes[d.index_of(PRESS1)]["color"] == 0x7F7F7FFF
            pub.publish_data("press-01", {"Temperature": 66.0})
            await d.wait(lambda: label(d, temp1) == "66 °C", what="good again")

            # The reversible encoding, and the 1.05 form without a NetworkMessage header, for another writer.
            pub2 = ua.Publisher(broker.port, "gw1", "line-01", reversible=True)
            try:
                pub2.publish_data("press-02", {"temperature": ua.Variant(88.0, "Double")}, writer_id=7)
                await d.wait(lambda: label(d, PRESS2 + "/temp") == "88 °C", what="reversible encoding")
                pub2.publish_data("press-02", {"temperature": 61.0}, writer_id=7, network_header=False, reversible=False)
                await d.wait(lambda: label(d, PRESS2 + "/temp") == "61 °C", what="bare DataSetMessage")
            finally:
                pub2.close()

            # Sequence gaps are counted (the values still apply).
            gaps = metric(server, "scenestream_opcua_sequence_gaps_total")
            seq = pub.writers.next_seq(pub.writers.resolve("press-01")[1], advance=False)
            pub.publish_data("press-01", {"Temperature": 55.0}, seq=seq + 3)
            await d.wait(lambda: label(d, temp1) == "55 °C", what="value after a gap")
            await d.wait(lambda: metric(server, "scenestream_opcua_sequence_gaps_total") == gaps + 3, what="three lost messages counted")

            # Malformed messages are refused, counted by reason; ingest goes on.
            topic = pub.data_topic("press-01")
            pub.publish_raw(topic, "{not json")
            pub.publish_raw(topic, json.dumps({"MessageType": "ua-data", "PublisherId": "gw1"}))
            pub.publish_raw(topic, json.dumps([1, 2]))
            pub.publish_data("press-03", {"Temperature": 1.0})  # no mapping takes writer press-03
            pub.publish_data("press-01", {"Temperature": 44.0})
            await d.wait(lambda: label(d, temp1) == "44 °C", what="the value after the refused ones")
            await d.wait(lambda: refused(server, "not_json") == 1 and refused(server, "bad_message") == 1
                         and refused(server, "not_network_message") == 1 and refused(server, "unmapped") == 1,
                         what="refusals counted by reason")
            await d.close()

        asyncio.run(run())
    finally:
        if pub:
            pub.close()
        server.stop()
        broker.close()


def test_a_gateway_that_goes_quiet_goes_stale_by_age(tmp_path):
    """No death certificate in OPC UA PubSub: a publisher that stops is noticed by age (its mapping's periodMs)."""
    broker = Broker()
    server = start(tmp_path, broker, staleness={"minimumMs": 1000})
    pub = None
    try:
        async def run():
            nonlocal pub
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            pub = ua.Publisher(broker.port, "gw1", "line-01")
            temp1 = PRESS1 + "/temp"
            for v in (80.0, 81.0, 82.0):
                pub.publish_data("press-01", {"Temperature": v})
            await d.wait(lambda: label(d, temp1) == "82 °C", what="values")
            stopped = time.monotonic()
            await d.wait(lambda: label(d, temp1) == "82 °C (stale)", timeout=15, what="stale by age")
            # Not before its time: 1 s at least (3 × 200 ms is less).
            assert time.monotonic() - stopped >= 0.9
            twin = server.json(f"/api/twin?id={PRESS1}")
            assert twin["overdue"] is True and twin["properties"]["temperature"]["quality"] == "stale"
            assert twin["properties"]["temperature"]["ageMs"] >= 900
            assert metric(server, "scenestream_ingest_stale_by_age_total") >= 1
            # It speaks again: live again.
            pub.publish_data("press-01", {"Temperature": 83.0})
            await d.wait(lambda: label(d, temp1) == "83 °C", what="live again")
            await d.close()

        asyncio.run(run())
    finally:
        if pub:
            pub.close()
        server.stop()
        broker.close()
