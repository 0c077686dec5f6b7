"""DTDL v3 twin models and aggregates over relationships, in a copy of the demo plant: values outside a model's
schema are refused and counted on MQTT and HTTP alike (nothing applied); relationships reach /api/twin; a line's
label shows the hottest of its presses (a binding over a relationship) and a line alert fires and clears when any
press overheats (a rule over one) — files only, no code."""
import asyncio
import json
import shutil
import urllib.error
from pathlib import Path

from broker import Broker
from conftest import Server
from device import Device
from test_ingest import label, metric, post

ROOT = Path(__file__).resolve().parents[2]
LINE = "hall-a/line-01"
PRESSES = [f"{LINE}/press-0{k}" for k in (1, 2, 3)]

INTERFACES = [
    {"@context": "dtmi:dtdl:context;3", "@id": "dtmi:demo:Press;1", "@type": "Interface", "displayName": "Press",
     "contents": [
         {"@type": ["Telemetry", "Temperature"], "name": "temperature", "schema": "double", "unit": "degreeCelsius", "minValue": -20, "maxValue": 300},
         {"@type": "Telemetry", "name": "ram", "schema": "double", "unit": "metre"},
         {"@type": "Property", "name": "mode", "schema": {"@type": "Enum", "valueSchema": "string",
                                                           "enumValues": [{"name": "auto", "enumValue": "auto"}, {"name": "manual", "enumValue": "manual"}]}},
         {"@type": "Component", "name": "motor", "schema": "dtmi:demo:Motor;1"}]},
    {"@context": "dtmi:dtdl:context;3", "@id": "dtmi:demo:Motor;1", "@type": "Interface",
     "contents": [{"@type": "Telemetry", "name": "current", "schema": "double", "unit": "ampere", "maxValue": 40}]},
    {"@context": "dtmi:dtdl:context;3", "@id": "dtmi:demo:Line;1", "@type": "Interface",
     "contents": [{"@type": "Relationship", "name": "contains", "target": "dtmi:demo:Press;1"}]},
]


def plant(tmp_path):
    dst = tmp_path / "plant"
    shutil.copytree(ROOT / "Assets" / "plants" / "demo", dst)
    (dst / "dtdl").mkdir()
    (dst / "dtdl" / "demo.json").write_text(json.dumps(INTERFACES))
    (dst / "twin-graph.json").write_text(json.dumps({
        "twins": [{"$dtId": LINE, "$metadata": {"$model": "dtmi:demo:Line;1"}}]
        + [{"$dtId": p, "$metadata": {"$model": "dtmi:demo:Press;1"}} for p in PRESSES],
        "relationships": [{"$sourceId": LINE, "$relationshipName": "contains", "$targetId": p} for p in PRESSES]}))
    b = json.loads((dst / "bindings.json").read_text())
    b["bindings"].append({"twins": LINE, "property": "max(contains.temperature)", "node": "{twin}", "field": "label",
                          "map": {"kind": "format", "format": "Line 1 · hottest {value} °C", "precision": 0}})
    (dst / "bindings.json").write_text(json.dumps(b))
    r = json.loads((dst / "rules.json").read_text())
    r["rules"].append({"id": "line-overheat", "twins": LINE, "property": "count(contains.overheated)", "above": 0.5,
                       "severity": "critical", "message": "{twin}: {value} press(es) overheating"})
    (dst / "rules.json").write_text(json.dumps(r))
    return dst


def refused(server, source, reason):
    return metric(server, f'scenestream_ingest_refused_total{{source="{source}",reason="{reason}"}}')


def test_models_check_values_and_aggregates_follow_relationships(tmp_path):
    broker = Broker()
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"simulator": False, "plant": str(plant(tmp_path)), "data": str(tmp_path / "data"),
                               "ingestToken": "t0ken", "mqtt": {"port": broker.port}}))
    server = Server("--config", str(cfg))
    try:
        async def run():
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            temp1 = PRESSES[0] + "/temp"

            # In range: applied. Out of range, wrong type, not in the enum: refused and counted, the value kept.
            broker.publish(f"scenestream/{PRESSES[0]}/temperature", "71")
            await d.wait(lambda: label(d, temp1) == "71 °C", what="a value in range")
            broker.publish(f"scenestream/{PRESSES[0]}/temperature", "450")
            broker.publish(f"scenestream/{PRESSES[0]}/temperature", json.dumps({"value": "hot"}))
            broker.publish(f"scenestream/{PRESSES[0]}/mode", json.dumps({"value": "turbo"}))
            broker.publish(f"scenestream/{PRESSES[0]}/motor/current", "55")  # the component's model
            await d.wait(lambda: refused(server, "mqtt", "out_of_range") == 3 and refused(server, "mqtt", "wrong_type") == 1,
                         what="refusals by reason")
            assert label(d, temp1) == "71 °C"
            twin = server.json(f"/api/twin?id={PRESSES[0]}")
            assert twin["model"] == "dtmi:demo:Press;1" and twin["modelName"] == "Press"
            assert twin["properties"]["temperature"]["value"] == 71 and twin["properties"]["temperature"]["unit"] == "°C"
            assert "mode" not in twin["properties"]

            # HTTP ingest holds to the same models: the batch is refused whole, with the entry and the reason.
            status, body = post(server, {"updates": [{"twin": PRESSES[1], "property": "temperature", "value": 60},
                                                     {"twin": PRESSES[1], "property": "temperature", "value": -100}]})
            assert status == 400 and b"updates[1]: out_of_range" in body, body
            assert refused(server, "http", "out_of_range") == 1
            try:
                server.json(f"/api/twin?id={PRESSES[1]}")
                raise AssertionError("the first entry of the refused batch was applied")
            except urllib.error.HTTPError as e:
                assert e.code == 404  # nothing of it arrived: the twin has no values at all

            # Relationships reach /api/twin.
            line = server.json(f"/api/twin?id={LINE}")
            assert sorted(r["target"] for r in line["relationships"]) == PRESSES and {r["name"] for r in line["relationships"]} == {"contains"}

            # A binding over the relationship: the line's label shows its hottest press.
            assert post(server, {"updates": [{"twin": PRESSES[1], "property": "temperature", "value": 88},
                                             {"twin": PRESSES[2], "property": "temperature", "value": 64}]})[0] == 200
            await d.wait(lambda: label(d, LINE) == "Line 1 · hottest 88 °C", what="the line's label over its presses")
            broker.publish(f"scenestream/{PRESSES[1]}/temperature", "52")
            await d.wait(lambda: label(d, LINE) == "Line 1 · hottest 71 °C", what="the hottest is another press now")

            # A rule over the relationship: fires when any press overheats, clears when none does.
            broker.publish(f"scenestream/{PRESSES[2]}/overheated", json.dumps({"value": True}))
            await d.wait(lambda: any(a["id"] == f"line-overheat@{LINE}" for a in server.json(f"/api/twin?id={LINE}")["alerts"]),
                         what="the line alert raised")
            assert server.json(f"/api/twin?id={LINE}")["alerts"][0]["message"] == f"{LINE}: 1.0 press(es) overheating"
            broker.publish(f"scenestream/{PRESSES[2]}/overheated", json.dumps({"value": False}))
            await d.wait(lambda: not server.json(f"/api/twin?id={LINE}")["alerts"], what="the line alert cleared")
            await d.close()

        asyncio.run(run())
    finally:
        server.stop()
        broker.close()


def test_a_broken_model_file_stops_the_start_with_its_reason(tmp_path):
    dst = plant(tmp_path)
    bad = json.loads((dst / "twin-graph.json").read_text())
    bad["relationships"].append({"$sourceId": LINE, "$relationshipName": "feeds", "$targetId": PRESSES[0]})
    (dst / "twin-graph.json").write_text(json.dumps(bad))
    import subprocess
    from conftest import binary
    r = subprocess.run([binary(), "serve", "--port", "0", "--plant", str(dst), "--data", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "twin-graph.json" in r.stderr and "$.relationships[3].$relationshipName" in r.stderr and "no relationship feeds" in r.stderr, r.stderr
