"""An edge node built with a third-party Sparkplug B library, mqtt-spb-wrapper 2.1.2 from PyPI (not our encoder),
to check that SceneStream interoperates with what that library really puts on the wire.

    python3 spb_wrapper_edge.py --port P [--host 127.0.0.1] --group hall-a --node line-01 --device press-01
                                [--aliases] [--period 0.1] [--start 20.0] [--step 0.5]

Runs edge node NODE with one device DEVICE whose metric `temperature` is a Float. Publishes NBIRTH and DBIRTH,
prints "ready" on stdout, then publishes DDATA with `temperature` every PERIOD seconds: a ramp START, START+STEP, ...
until a `value` command, after that the last value given (PERIOD 0: only on commands).
With --node-metric the node's own metric `uptime` (Int64, in its NBIRTH) is published as NDATA every PERIOD once
the device is dead (never while the device publishes: the two are separate MQTT connections sharing one seq
counter, so interleaving them could reach a host out of order).
Commands on stdin, one a line:
    value X   publish temperature X now
    ddeath    publish the device's death (DDEATH) and stop its data
    quit      clean disconnect (explicit DDEATH and NDEATH, then MQTT DISCONNECT); end of stdin does the same
SIGKILL it to make the edge node vanish: the broker then publishes the MQTT wills (NDEATH, and DDEATH if the
device was still up).

What the library does (2.1.2): the edge node and the device are two separate MQTT connections, each with its own
will (NDEATH bdSeq 0; DDEATH); birth metric names carry a "DATA/" prefix that data messages do not
("DATA/temperature" vs "temperature"); aliases only with --aliases (then in DBIRTH and DDATA, names too); NBIRTH
says bdSeq 1, never the will's 0; DDEATH and NDEATH have neither seq nor timestamp. Its disconnect() takes up to
~1 s to send the MQTT DISCONNECT after the DDEATH/NDEATH: SIGKILL sooner and the broker adds the will as well.
An NCMD `Node Control/Rebirth` kills the node's network thread (a TypeError in the library): no rebirth, and the
broker publishes the NDEATH will ~90 s later (keepalive 60 s) while the device's DDATA goes on.
Needs mqtt-spb-wrapper 2.1.2 on PYTHONPATH: scripts/install-deps.sh puts it, with its pinned paho-mqtt 1.6.1 and
protobuf 3.20.3, in .build-py/spb-wrapper so that the other tests keep paho-mqtt 2.
"""
import argparse
import sys
import threading

from mqtt_spb_wrapper import MetricDataType, MqttSpbEntityDevice, MqttSpbEntityEdgeNode


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--aliases", action="store_true", help="give temperature alias 1 (the library then sends it in DBIRTH and DDATA)")
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--start", type=float, default=20.0)
    ap.add_argument("--step", type=float, default=0.5)
    ap.add_argument("--node-metric", action="store_true", help="publish the node's uptime as NDATA once the device is dead")
    a = ap.parse_args()

    node = MqttSpbEntityEdgeNode(a.group, a.node)  # its NBIRTH carries bdSeq and "CMD/Node Control/Rebirth"
    if a.node_metric:
        node.data.set_value("uptime", 0, spb_data_type=MetricDataType.Int64)
    device = MqttSpbEntityDevice(a.group, a.node, a.device)
    device.data.set_value("temperature", a.start, spb_data_type=MetricDataType.Float, spb_alias_num=1 if a.aliases else None)

    # Each connect() registers a will (NDEATH / DDEATH); the node is connected and born first.
    if not node.connect(a.host, a.port):
        sys.exit("edge node could not connect")
    node.publish_birth()
    if not device.connect(a.host, a.port):
        sys.exit("device could not connect")
    device.publish_birth()
    print("ready", flush=True)

    lock = threading.Lock()
    state = {"value": a.start, "ramp": True, "alive": True, "uptime": 0}
    stop = threading.Event()

    def publish(value):  # with the lock held
        device.data.set_value("temperature", value)
        device.publish_data()

    def tick():
        while a.period > 0 and not stop.wait(a.period):
            with lock:
                if not state["alive"]:
                    if a.node_metric:
                        state["uptime"] += 1
                        node.data.set_value("uptime", state["uptime"])
                        node.publish_data()
                    continue
                if state["ramp"]:
                    state["value"] += a.step
                publish(state["value"])

    threading.Thread(target=tick, daemon=True).start()

    for line in sys.stdin:
        cmd = line.split()
        with lock:
            if cmd[:1] == ["value"] and len(cmd) == 2 and state["alive"]:
                state.update(value=float(cmd[1]), ramp=False)
                publish(state["value"])
            elif cmd == ["ddeath"] and state["alive"]:
                state["alive"] = False
                device.disconnect()  # the library's only way to publish a DDEATH: it also closes the device's connection
            elif cmd == ["quit"]:
                break
            elif cmd:
                print(f"ignored: {line.strip()}", file=sys.stderr, flush=True)

    stop.set()
    with lock:
        if state["alive"]:
            device.disconnect()
        node.disconnect()


if __name__ == "__main__":
    main()
