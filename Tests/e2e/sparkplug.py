"""Sparkplug B payloads for the tests, written from the specification's field numbers (not from our Swift code):
an independent encoder for what edge nodes publish and a decoder for what SceneStream sends back (rebirth
requests). Plus an MQTT edge-node helper over paho-mqtt."""
import queue
import struct
import time

import paho.mqtt.client as mqtt

# Sparkplug B data types
INT32, INT64, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 8, 9, 10, 11, 12


def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _len(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def metric(name=None, alias=None, datatype=None, value=None, timestamp=None, is_null=False):
    m = b""
    if name is not None:
        m += _len(1, name.encode())
    if alias is not None:
        m += _key(2, 0) + _varint(alias)
    if timestamp is not None:
        m += _key(3, 0) + _varint(timestamp)
    if datatype is not None:
        m += _key(4, 0) + _varint(datatype)
    if is_null:
        m += _key(7, 0) + b"\x01"
    if value is not None:
        dt = datatype
        if dt in (BOOLEAN,) or isinstance(value, bool):
            m += _key(14, 0) + (b"\x01" if value else b"\x00")
        elif dt == STRING or isinstance(value, str):
            m += _len(15, value.encode())
        elif dt == FLOAT:
            m += _key(12, 5) + struct.pack("<f", value)
        elif dt == INT32:
            m += _key(10, 0) + _varint(value & 0xFFFFFFFF)
        elif dt in (INT64, UINT64):
            m += _key(11, 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)
        else:
            m += _key(13, 1) + struct.pack("<d", float(value))
    return m


def payload(metrics, seq=None, timestamp=None):
    parts = [_key(1, 0) + _varint(timestamp if timestamp is not None else int(time.time() * 1000))]
    parts += [_len(2, m) for m in metrics]
    if seq is not None:
        parts.append(_key(3, 0) + _varint(seq))
    return b"".join(parts)


def decode(data):
    """A generic protobuf decoder: {field: [values]} with nested messages for field 2 (metrics)."""
    out, i = {}, 0

    def varint():
        nonlocal i
        shift = v = 0
        while True:
            b = data[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            val = varint()
        elif wire == 1:
            val = struct.unpack_from("<d", data, i)[0]
            i += 8
        elif wire == 5:
            val = struct.unpack_from("<f", data, i)[0]
            i += 4
        elif wire == 2:
            n = varint()
            val = bytes(data[i:i + n])
            i += n
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(field, []).append(val)
    return out


class EdgeNode:
    """An edge node (and its devices) on a real broker: publishes births, data and deaths with a running seq."""

    def __init__(self, port, group, node):
        self.group, self.node, self.seq, self.bd_seq = group, node, 0, 0
        self.commands = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{node}")
        self.c.on_message = lambda c, u, m: self.commands.put((m.topic, m.payload, m.retain))
        # The node's death certificate is its will.
        self.c.will_set(self.topic("NDEATH"), payload([metric("bdSeq", datatype=UINT64, value=self.bd_seq)]), qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.subscribe(f"spBv1.0/{group}/NCMD/{node}")

    def subscribe(self, topic):
        r, mid = self.c.subscribe(topic, qos=1)
        assert r == mqtt.MQTT_ERR_SUCCESS

    def topic(self, kind, device=None):
        return f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def next_seq(self):
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def publish(self, topic, data, qos=0):
        self.c.publish(topic, data, qos=qos).wait_for_publish(timeout=10)

    def nbirth(self, metrics=()):
        self.seq = 0
        self.publish(self.topic("NBIRTH"), payload([metric("bdSeq", datatype=UINT64, value=self.bd_seq),
                                                    metric("Node Control/Rebirth", datatype=BOOLEAN, value=False), *metrics], seq=self.next_seq()))

    def dbirth(self, device, metrics):
        self.publish(self.topic("DBIRTH", device), payload(metrics, seq=self.next_seq()))

    def ddata(self, device, metrics, seq=None):
        self.publish(self.topic("DDATA", device), payload(metrics, seq=self.next_seq() if seq is None else seq))

    def ddeath(self, device):
        self.publish(self.topic("DDEATH", device), payload([], seq=self.next_seq()))

    def ndeath(self):
        self.publish(self.topic("NDEATH"), payload([metric("bdSeq", datatype=UINT64, value=self.bd_seq)]))

    def command(self, timeout=15):
        return self.commands.get(timeout=timeout)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def retained(port, topic, timeout=10):
    """The retained message on `topic` (or None)."""
    got = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: got.put(m.payload)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        return got.get(timeout=timeout)
    except queue.Empty:
        return None
    finally:
        c.loop_stop()
        c.disconnect()
