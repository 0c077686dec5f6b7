"""Sparkplug B with an edge library nobody here wrote: mqtt-spb-wrapper 2.1.2 from PyPI (`spb_wrapper_edge.py`, run
with the library from .build-py/spb-wrapper) publishing births, data and deaths through a real mosquitto.

What that library does that a host must live with: birth names carry a `DATA/` prefix its data names lack (taken
with `stripPrefixes`), its DDEATH has no seq (taken: the device is gone either way), and its NDEATH's bdSeq never
matches its NBIRTH (ignored, as the specification says) — so an edge node that vanishes is noticed by age."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from broker import Broker
from conftest import Server
from device import Device
from test_ingest import label, metric

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / ".build-py" / "spb-wrapper"
PRESS = "hall-a/line-01/press-01"


class Edge:
    """The edge process: an edge node line-01 and a device press-01 made with mqtt-spb-wrapper."""

    def __init__(self, port, *extra):
        assert (LIBRARY / "mqtt_spb_wrapper").is_dir(), f"mqtt-spb-wrapper is not in {LIBRARY}: run scripts/install-deps.sh"
        env = dict(os.environ, PYTHONPATH=str(LIBRARY))
        self.p = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("spb_wrapper_edge.py")), "--port", str(port), "--group", "hall-a",
             "--node", "line-01", "--device", "press-01", "--period", "0.1", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.p.stdout.readline()
        assert line.strip() == "ready", f"edge did not start: {line!r} {self.p.stderr.read() if self.p.poll() is not None else ''}"

    def say(self, command):
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()

    def kill(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=10)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.say("quit")
                self.p.wait(timeout=10)
            except Exception:
                self.kill()


def quality(server, twin, prop):
    return server.json(f"/api/twin?id={twin}")["properties"].get(prop, {}).get("quality")


def test_mqtt_spb_wrapper_births_data_deaths_and_a_vanished_edge_node(tmp_path):
    broker = Broker()
    cfg = {"simulator": False, "data": str(tmp_path / "data"), "staleness": {"minimumMs": 1000},
           "mqtt": {"port": broker.port, "sparkplug": {"groups": ["hall-a"], "hostId": "scenestream-interop",
                                                       "stripPrefixes": ["DATA/", "ATTR/", "CMD/"], "rebirthIntervalMs": 86400000}}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    server = Server("--config", str(tmp_path / "config.json"))
    edges = []
    try:
        async def run():
            d = await Device(server.url, "demo:ops", 2, "ops").open()
            await d.wait(lambda: d.replica.version is not None)
            await d.wait(lambda: metric(server, "scenestream_mqtt_connected") == 1, what="broker connected")
            temp = PRESS + "/temp"

            # Births and data: the ramp (20.5, 21, …) reaches the replica through the binding on press-01.
            edge = Edge(broker.port, "--start", "20")
            edges.append(edge)
            await d.wait(lambda: (label(d, temp) or "").endswith("°C") and "stale" not in label(d, temp), what="data from the library")
            edge.say("value 93.4")
            await d.wait(lambda: label(d, temp) == "93 °C", what="a chosen value")
            assert metric(server, 'scenestream_ingest_refused_total{source="sparkplug",reason="unknown_metric"}') == 0
            assert metric(server, 'scenestream_ingest_refused_total{source="sparkplug",reason="malformed_payload"}') == 0

            # Its DDEATH (no seq): the device's values are stale at once.
            edge.say("ddeath")
            await d.wait(lambda: label(d, temp) == "93 °C (stale)", what="stale after the library's DDEATH")
            assert quality(server, PRESS, "temperature") == "stale"
            edge.stop()

            # A new edge session whose node then vanishes (SIGKILL): its device died first (clean DDEATH), the node
            # keeps publishing its own metric, then the broker sends the node's will — whose bdSeq does not match
            # the NBIRTH, so it is ignored. Only age tells that the node is gone.
            edge2 = Edge(broker.port, "--start", "40", "--node-metric")
            edges.append(edge2)
            await d.wait(lambda: (label(d, temp) or "").endswith("°C") and "stale" not in label(d, temp), what="live again after rebirth")
            edge2.say("ddeath")
            # Enough of it to learn its period (five gaps at least).
            await d.wait(lambda: "expectedPeriodMs" in server.json("/api/twin?id=hall-a/line-01"), what="the node's period learned")
            assert quality(server, "hall-a/line-01", "uptime") == "good"
            aged = metric(server, "scenestream_ingest_stale_by_age_total")
            edge2.kill()
            killed = time.monotonic()
            try:
                await d.wait(lambda: quality(server, "hall-a/line-01", "uptime") == "stale", timeout=15, what="the vanished node stale by age")
            except AssertionError as e:
                raise AssertionError(f"{e}: {server.json('/api/twin?id=hall-a/line-01')}\n{server.log_tail()}") from None
            assert time.monotonic() - killed >= 0.8  # by age (minimumMs 1 s), not at once
            assert metric(server, "scenestream_ingest_stale_by_age_total") >= aged + 1
            node = server.json("/api/twin?id=hall-a/line-01")
            assert node["overdue"] is True and node["properties"]["uptime"]["ageMs"] >= 800
            await d.close()

        asyncio.run(run())
    finally:
        for e in edges:
            e.kill()
        server.stop()
        broker.close()
