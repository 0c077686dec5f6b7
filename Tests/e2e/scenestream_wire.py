"""An independent SceneStream v1 client codec, written from Protocol/SPEC.md alone (no Swift code shared).

Decodes every server message, encodes the client messages the tests need, and applies frames to a replica.
"""
import zlib

MSG = {
    "hello": 0x01, "subscribe": 0x02, "ack": 0x03, "presence": 0x04, "select": 0x05, "annotate": 0x06,
    "handoffOffer": 0x07, "handoffClaim": 0x08, "playback": 0x09, "ping": 0x0A, "listSessions": 0x0B,
    "refreshToken": 0x0C, "follow": 0x0D, "requestKeyframe": 0x0E, "welcome": 0x81, "keyframe": 0x82, "delta": 0x83, "alerts": 0x84,
    "sessionState": 0x85, "handoff": 0x86, "error": 0x87, "pong": 0x88, "roomMembers": 0x89, "anchors": 0x8A,
}
NAMES = {v: k for k, v in MSG.items()}
FIELDS = ["structure", "anchor", "translation", "rotation", "scale", "color", "visible", "label", "asset", "layer", "zone"]


class WireError(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.b = data
        self.i = 0

    def remaining(self):
        return len(self.b) - self.i

    def u8(self):
        if self.i >= len(self.b):
            raise WireError("truncated")
        v = self.b[self.i]
        self.i += 1
        return v

    def varint(self):
        shift, out = 0, 0
        for n in range(10):
            byte = self.u8()
            out |= (byte & 0x7F) << shift
            if byte & 0x80 == 0:
                if out >= 1 << 64 or (byte == 0 and n > 0):  # too big, or overlong (not the shortest form)
                    raise WireError("malformedVarint")
                return out
            shift += 7
        raise WireError("malformedVarint")

    def zigzag(self):
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def string(self):
        n = self.varint()
        if n > self.remaining():
            raise WireError("truncated")
        s = self.b[self.i:self.i + n]
        self.i += n
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("invalidValue")

    def count(self):
        n = self.varint()
        if n > self.remaining():
            raise WireError("truncated")
        return n

    def u32be(self):
        if self.remaining() < 4:
            raise WireError("truncated")
        v = int.from_bytes(self.b[self.i:self.i + 4], "big")
        self.i += 4
        return v

    def boolean(self):
        v = self.u8()
        if v > 1:
            raise WireError("invalidValue")
        return v == 1

    def int32(self):
        v = self.zigzag()
        if not -(1 << 31) <= v < (1 << 31):
            raise WireError("invalidValue")
        return v

    def vec3(self):
        return [self.int32(), self.int32(), self.int32()]

    def rotation(self):
        first = self.varint()
        b, c = self.int32(), self.int32()
        v = first >> 1 if first & 1 else first >> 3
        a = (v >> 1) ^ -(v & 1)
        if not -(1 << 31) <= a < (1 << 31):
            raise WireError("invalidValue")
        if first & 1:
            return {"delta": True, "abc": [a, b, c]}
        return {"delta": False, "largest": (first >> 1) & 3, "abc": [a, b, c]}

    def enum(self, top):
        v = self.u8()
        if v > top:
            raise WireError("invalidValue")
        return v

    def end(self):
        if self.remaining():
            raise WireError("trailingBytes")


def open_envelope(msg):
    if len(msg) < 2:
        raise WireError("truncated")
    t, flags = msg[0], msg[1]
    if flags & ~1:
        raise WireError("reservedFlags")
    body = bytes(msg[2:])
    if flags & 1:
        d = zlib.decompressobj(-15)
        try:
            body = d.decompress(body, 16 << 20)
        except zlib.error:
            raise WireError("compression")
        if not d.eof or d.unused_data:
            raise WireError("compression")
    return t, body


def read_head(r, keyframe):
    """What comes before a frame's blocks (§6.1–6.2), the same in versions 1 and 2: the frame so far, its strings."""
    f = {"type": "keyframe" if keyframe else "delta", "version": r.varint()}
    if keyframe:
        f["sceneId"] = r.string()
        f["positionUnitsPerMetre"] = r.varint()
        f["rotationBits"] = r.u8()
    else:
        back = r.varint()
        if back > f["version"]:
            raise WireError("invalidValue")
        f["base"] = f["version"] - back
    f["timeMs"] = r.varint()
    f["nodeSpace"] = r.varint()
    return f, [r.string() for _ in range(r.count())]


def decode_frame(r, keyframe):
    f, strings = read_head(r, keyframe)
    space = f["nodeSpace"]

    def sref():
        i = r.varint()
        if i >= len(strings):
            raise WireError("invalidValue")
        return strings[i]

    def gaps(n):
        out, prev = [], -1
        for _ in range(n):
            i = prev + 1 + r.varint()
            if i >= space:
                raise WireError("invalidValue")
            out.append(i)
            prev = i
        return out

    f["removed"] = gaps(r.count()) if not keyframe else []
    n = r.count()
    idx = gaps(n)
    masks = [r.varint() for _ in range(n)]
    if any(m >> len(FIELDS) for m in masks):
        raise WireError("invalidValue")  # reserved mask bits
    nodes = [default_node() for _ in range(n)]
    for bit, name in enumerate(FIELDS):
        for k in range(n):
            if not masks[k] & (1 << bit):
                continue
            node = nodes[k]
            if name == "structure":
                p = r.varint()
                if p:
                    v = p - 1
                    node["parent"] = idx[k] - ((v >> 1) ^ -(v & 1))
                    if not 0 <= node["parent"] < space or node["parent"] == idx[k]:
                        raise WireError("invalidValue")
                node["name"] = sref()
            elif name == "anchor" and node["parent"] is not None:
                raise WireError("invalidValue")  # only roots name an anchor
            elif name in ("translation",):
                node[name] = r.vec3()
            elif name == "scale":
                node[name] = [v + 1000 for v in r.vec3()]
            elif name == "rotation":
                rot = r.rotation()
                if rot["delta"]:
                    raise WireError("invalidValue")
                node[name] = [rot["largest"]] + rot["abc"]
            elif name == "color":
                node[name] = r.u32be()
            elif name == "visible":
                node[name] = r.boolean()
            else:
                node[name] = sref()
    f["entered"] = list(zip(idx, nodes))
    f["updated"] = []
    if not keyframe:
        n = r.count()
        if n:
            mode = r.u8()
            if mode == 0:
                uidx = gaps(n)
            elif mode == 1:
                raw = r.b[r.i:r.i + (space + 7) // 8]
                if len(raw) < (space + 7) // 8:
                    raise WireError("truncated")
                r.i += len(raw)
                uidx = [k for k in range(len(raw) * 8) if raw[k >> 3] & (1 << (k & 7))]
                if len(uidx) != n or (uidx and uidx[-1] >= space):
                    raise WireError("invalidValue")
            else:
                raise WireError("invalidValue")
        else:
            uidx = []
        umasks = [r.varint() for _ in range(n)]
        if any(m >> len(FIELDS) for m in umasks):
            raise WireError("invalidValue")
        ups = [{} for _ in range(n)]
        for bit, name in enumerate(FIELDS):
            for k in range(n):
                if not umasks[k] & (1 << bit):
                    continue
                if name == "structure":
                    raise WireError("invalidValue")
                if name in ("translation", "scale"):
                    ups[k][name] = r.vec3()
                elif name == "rotation":
                    ups[k][name] = r.rotation()
                elif name == "color":
                    ups[k][name] = r.u32be()
                elif name == "visible":
                    ups[k][name] = r.boolean()
                else:
                    ups[k][name] = sref()
        f["updated"] = list(zip(uidx, ups))
    r.end()
    return f


def default_node():
    return {"parent": None, "name": "", "anchor": "", "translation": [0, 0, 0], "rotation": [3, 0, 0, 0],
            "scale": [1000, 1000, 1000], "color": 0, "visible": True, "label": "", "asset": "", "layer": "", "zone": ""}


def decode_server(msg, version=1):
    """A server message; `version` is the protocol version the welcome chose (frames are range-coded from 2)."""
    if version >= 2 and len(msg) >= 1 and msg[0] in (0x82, 0x83):
        return decode_frame_v2(msg)
    t, body = open_envelope(msg)
    r = Reader(body)
    name = NAMES.get(t)
    if name in ("keyframe", "delta"):
        return decode_frame(r, name == "keyframe")
    if name == "welcome":
        m = {"type": name, "version": r.varint(), "sessionId": r.string(), "sessionToken": r.string(),
             "serverName": r.string(), "heartbeatMs": r.varint(), "maxMessageBytes": r.varint(),
             "scenes": [r.string() for _ in range(r.count())]}
        if m["version"] >= 2:
            m["ackWindow"] = r.varint()
    elif name == "error":
        m = {"type": name, "code": r.varint(), "requestId": r.varint(), "message": r.string()}
    elif name == "pong":
        m = {"type": name, "nonce": r.varint(), "serverTimeMs": r.varint()}
    elif name == "alerts":
        alerts = []
        for _ in range(r.count()):
            a = {"id": r.string()}
            node = r.varint()
            a["node"] = node - 1 if node else None
            a["severity"], a["state"], a["timeMs"], a["message"] = r.enum(2), r.enum(1), r.varint(), r.string()
            alerts.append(a)
        m = {"type": name, "alerts": alerts}
    elif name == "sessionState":
        m = {"type": name, "sessionId": r.string(), "userId": r.string(), "role": r.u8(), "roomId": r.string()}
        m["members"] = [{"userId": r.string(), "displayName": r.string(), "device": r.u8(), "role": r.u8(), "color": r.u32be()}
                        for _ in range(r.count())]
        m["selection"] = [r.varint() for _ in range(r.count())]
        m["followUserId"] = r.string()
        m["playback"] = {"mode": r.u8(), "cursorMs": r.varint(), "speedMilli": r.varint()}
        m["viewpoint"] = read_pose(r) if r.boolean() else None
    elif name == "roomMembers":
        m = {"type": name, "roomId": r.string(), "changes": []}
        for _ in range(r.count()):
            user = r.string()
            entries = [{"userId": user, "displayName": r.string(), "device": r.u8(), "role": r.u8(), "color": r.u32be()}
                       for _ in range(r.count())]
            m["changes"].append({"userId": user, "members": entries})
    elif name == "anchors":
        m = {"type": name, "sceneId": r.string(), "anchors": []}
        for _ in range(r.count()):
            a = {"id": r.string(), "position": r.vec3(), "rotation": [r.int32() for _ in range(4)]}
            if any(abs(q) > 1_000_000 for q in a["rotation"]):
                raise WireError("invalidValue")
            a["handles"] = [{"platform": r.string(), "value": r.string()} for _ in range(r.count())]
            a["updatedMs"] = r.varint()
            m["anchors"].append(a)
    elif name == "handoff":
        kind = r.u8()
        if kind == 0:
            m = {"type": name, "kind": "offer", "requestId": r.varint(), "code": r.string(), "url": r.string(), "expiresMs": r.varint()}
        elif kind == 1:
            m = {"type": name, "kind": "handedOff", "to": r.u8(), "detached": r.boolean()}
        elif kind == 2:
            m = {"type": name, "kind": "claimed", "requestId": r.varint(), "sessionId": r.string(), "sessionToken": r.string(), "from": r.u8()}
        elif kind == 3:
            m = {"type": name, "kind": "sessions", "requestId": r.varint(), "sessions": [
                {"sessionId": r.string(), "device": r.u8(), "sceneId": r.string(), "lastSeenMs": r.varint()} for _ in range(r.count())]}
        else:
            raise WireError("invalidValue")
    else:
        # Other messages are not needed by these tests; they are still well-formed envelopes.
        return {"type": name or "unknown", "raw": body}
    r.end()
    return m


def read_pose(r):
    anchor = r.string()
    pos = r.vec3()
    rot = r.rotation()
    if rot["delta"]:
        raise WireError("invalidValue")
    return {"anchor": anchor, "position": pos, "rotation": [rot["largest"]] + rot["abc"]}


class W:
    def __init__(self):
        self.b = bytearray()

    def varint(self, v):
        while v >= 0x80:
            self.b.append((v & 0x7F) | 0x80)
            v >>= 7
        self.b.append(v)
        return self

    def zigzag(self, v):
        return self.varint((v << 1) ^ (v >> 63) if v < 0 else v << 1)

    def string(self, s):
        e = s.encode()
        self.varint(len(e))
        self.b += e
        return self

    def u8(self, v):
        self.b.append(v)
        return self


def envelope(t, body):
    return bytes([MSG[t], 0]) + bytes(body)


def hello(device=2, name="py-e2e", token="", resume_token="", resume_version=0, max_version=1):
    w = W().varint(1).varint(max_version).u8(device).string(name).string(token).string(resume_token).varint(resume_version)
    return envelope("hello", w.b)


def subscribe(scene, request_id=1, rate=0, layers=(), zones=(), budget=0, region=None):
    w = W().varint(request_id).string(scene)
    if region:
        anchor, lo, hi = region
        w.u8(1).string(anchor)
        for v in list(lo) + list(hi):
            w.zigzag(v)
    else:
        w.u8(0)
    w.varint(len(layers))
    for layer in layers:
        w.string(layer)
    w.varint(len(zones))
    for z in zones:
        w.string(z)
    w.varint(rate).varint(budget)
    return envelope("subscribe", w.b)


def write_pose(w, anchor, pos, largest=3, abc=(0, 0, 0)):
    w.string(anchor)
    for v in pos:
        w.zigzag(v)
    a = abc[0]
    za = (a << 1) ^ (a >> 63) if a < 0 else a << 1
    w.varint((za << 3) | (largest << 1))
    w.zigzag(abc[1]).zigzag(abc[2])


def presence(anchor, head=None, pointer=None, target=None):
    w = W()
    mask = (1 if head else 0) | (8 if pointer else 0)
    w.u8(mask)
    if head:
        write_pose(w, anchor, head)
    if pointer:
        write_pose(w, anchor, pointer)
    w.varint(0 if target is None else target + 1)
    return envelope("presence", w.b)


def select(nodes):
    w = W().varint(len(nodes))
    for n in nodes:
        w.varint(n)
    return envelope("select", w.b)


def annotate(request_id, node, offset, text, remove=""):
    w = W().varint(request_id).varint(node)
    for v in offset:
        w.zigzag(v)
    w.string(text).string(remove)
    return envelope("annotate", w.b)


def handoff_offer(request_id, keep_old=False):
    return envelope("handoffOffer", W().varint(request_id).u8(1 if keep_old else 0).b)


def handoff_claim(request_id, code="", session_id=""):
    return envelope("handoffClaim", W().varint(request_id).string(code).string(session_id).b)


def list_sessions(request_id):
    return envelope("listSessions", W().varint(request_id).b)


def playback(op, time_ms=0, speed_milli=1000):
    ops = {"seek": 0, "play": 1, "pause": 2, "live": 3}
    return envelope("playback", W().u8(ops[op]).varint(time_ms).varint(speed_milli).b)


def follow(user_id):
    return envelope("follow", W().string(user_id).b)


def request_keyframe(request_id):
    return envelope("requestKeyframe", W().varint(request_id).b)


def ack(version):
    return envelope("ack", W().varint(version).b)


def ping(nonce):
    return envelope("ping", W().varint(nonce).b)


class Replica:
    def __init__(self):
        self.version = None
        self.nodes = {}
        self.scene = None

    def apply(self, f):
        if f["type"] == "keyframe":
            self.nodes = {i: n for i, n in f["entered"]}
            self.scene = f["sceneId"]
        else:
            if self.version != f["base"]:
                raise WireError("baseMismatch %s != %s" % (self.version, f["base"]))
            # Whole or nothing (§6.7): the frame is applied to a copy, which replaces the replica at the end.
            nodes = dict(self.nodes)
            for i in f["removed"]:
                if i not in self.nodes:
                    raise WireError("unknownNode %d" % i)
                nodes.pop(i, None)  # a descendant listed after its parent is still in the replica before the frame
            for i, n in f["entered"]:
                if i in nodes:
                    raise WireError("entered twice")
                nodes[i] = n
            for i, n in f["entered"]:
                if n["parent"] is not None and n["parent"] not in nodes:
                    raise WireError("unknownNode parent %d" % n["parent"])
            wrap = lambda a, b: ((a + b + 2**31) % 2**32) - 2**31  # differences wrap in int32
            for i, u in f["updated"]:
                if i not in nodes:
                    raise WireError("unknownNode %d" % i)
                n = nodes[i] = dict(nodes[i])
                for k, v in u.items():
                    if k in ("translation", "scale"):
                        n[k] = [wrap(a, b) for a, b in zip(n[k], v)]
                    elif k == "rotation":
                        if v["delta"]:
                            n[k] = [n[k][0]] + [wrap(a, b) for a, b in zip(n[k][1:], v["abc"])]
                        else:
                            n[k] = [v["largest"]] + v["abc"]
                    elif k == "anchor" and n["parent"] is not None:
                        raise WireError("invalidValue: only roots name an anchor")
                    else:
                        n[k] = v
            self.nodes = nodes
        self.version = f["version"]

    def as_description(self):
        """The replica in the JSON shape /api/scene uses, for comparison."""
        out = {}
        for i, n in self.nodes.items():
            d = {"index": i, "name": n["name"], "parent": n["parent"]}
            defaults = default_node()
            for k in FIELDS[1:]:
                if n[k] != defaults[k]:
                    if k == "rotation":
                        d[k] = {"largest": n[k][0], "abc": n[k][1:]}
                    else:
                        d[k] = n[k]
            out[i] = d
        return out


def apply_members(members, m):
    """The room's member list after `m`: a sessionState gives it whole, roomMembers replaces the named users'."""
    if m["type"] == "sessionState":
        return list(m["members"])
    if m["type"] == "roomMembers":
        changed = {c["userId"] for c in m["changes"]}
        return [x for x in members if x["userId"] not in changed] + [e for c in m["changes"] for e in c["members"]]
    return members


# --- Protocol version 2 frame bodies (SPEC §11): v1's header and string table, then range-coded blocks. ---

class RangeDecoder:
    """LZMA's binary range decoder; the encoder left out the first byte (always 0) and up to 8 trailing zeros."""
    MAX_OVERRUN = 8

    def __init__(self, b):
        self.b, self.i, self.range, self.code, self.overrun = b, 0, 0xFFFFFFFF, 0, 0
        for _ in range(4):
            self.code = (self.code << 8) | self.byte()

    def byte(self):
        if self.i < len(self.b):
            self.i += 1
            return self.b[self.i - 1]
        self.overrun += 1
        return 0

    def normalize(self):
        while self.range < 1 << 24:
            self.range = (self.range << 8) & 0xFFFFFFFF
            self.code = ((self.code << 8) | self.byte()) & 0xFFFFFFFF

    def bit(self, probs, k):
        """One bit with the adaptive probability probs[k] (of a 0, in 1/2048ths; moves 1/16 of the way)."""
        p = probs[k]
        bound = (self.range >> 11) * p
        if self.code < bound:
            self.range = bound
            probs[k] = p + ((2048 - p) >> 4)
            out = 0
        else:
            self.code -= bound
            self.range -= bound
            probs[k] = p - (p >> 4)
            out = 1
        self.normalize()
        return out

    def direct(self, n):
        v = 0
        for _ in range(n):
            self.range >>= 1
            b = 0
            if self.code >= self.range:
                self.code -= self.range
                b = 1
            v = (v << 1) | b
            self.normalize()
        return v


class UIntModel:
    """Bit length of v + 1 in unary, then the top three bits under the leading one as a tree per length, the rest
    direct."""
    T = 3

    def __init__(self):
        self.length = [1024] * 65
        self.top = [1024] * (65 << self.T)

    def decode(self, d):
        n = 0
        while n < 64 and d.bit(self.length, n):
            n += 1
        if n == 64:
            raise WireError("invalidValue")
        t, node, x = min(n, self.T), 1, 1
        for _ in range(t):
            b = d.bit(self.top, (n << self.T) + node)
            node, x = (node << 1) | b, (x << 1) | b
        x = (x << (n - t)) | d.direct(n - t)
        return x - 1


class VecModel:
    """Three int32s: which are non-zero (a 3-bit tree per run position, x = 4, y = 2, z = 1), then each non-zero
    one's sign and magnitude − 1."""

    def __init__(self):
        self.pattern, self.sign, self.magnitude = [TreeModel(3) for _ in range(8)], [1024] * 3, [UIntModel() for _ in range(3)]

    def decode(self, d, run):
        p, v = self.pattern[run].decode(d), [0, 0, 0]
        for k in range(3):
            if p & (4 >> k):
                negative = d.bit(self.sign, k)
                m = self.magnitude[k].decode(d)
                v[k] = -m - 1 if negative else m + 1
                if not -(1 << 31) <= v[k] < (1 << 31):
                    raise WireError("invalidValue")
        return v


class TreeModel:
    def __init__(self, bits):
        self.bits, self.p = bits, [1024] * (1 << bits)

    def decode(self, d):
        node = 1
        for _ in range(self.bits):
            node = (node << 1) | d.bit(self.p, node)
        return node - (1 << self.bits)


class GapModel:
    """Nine U models: after a zero gap, one per length of the zero run (1…7, longer as 7); else one for a previous
    gap of 1…7 (or none yet) and one for 8 or more."""

    def __init__(self):
        self.models, self.previous, self.zeros = [UIntModel() for _ in range(9)], 1, 0

    def decode(self, d):
        if self.previous == 0:
            ctx = min(self.zeros, 7) - 1
        else:
            ctx = 7 if self.previous < 8 else 8
        g = self.models[ctx].decode(d)
        self.zeros = self.zeros + 1 if g == 0 else 0
        self.previous = g
        return g


class MaskModel:
    """A "same as the previous mask" bit (context: the record follows the one before directly, the record before
    was the same), else the bits one by one in the context of the previous mask's bit."""

    def __init__(self):
        self.p, self.same, self.previous, self.previous_same = [1024] * 22, [1024] * 4, 0, 1

    def decode(self, d, first, follows):
        same = d.bit(self.same, 2 * follows + self.previous_same)
        m = self.previous
        if not same:
            m = 0
            for k in range(first, 11):
                if d.bit(self.p, k * 2 + ((self.previous >> k) & 1)):
                    m |= 1 << k
        self.previous, self.previous_same = m, same
        return m


def run_positions(idx):
    """How many records right before each one have consecutive indices (at most 7)."""
    out = [0] * len(idx)
    for k in range(1, len(idx)):
        if idx[k] == idx[k - 1] + 1:
            out[k] = min(out[k - 1] + 1, 7)
    return out


def decode_frame_v2(msg):
    """A version-2 keyframe or delta message, as the same dict decode_server gives for a version-1 frame."""
    if len(msg) < 2:
        raise WireError("truncated")
    if msg[0] not in (0x82, 0x83):
        raise WireError("unknownMessageType")
    if msg[1]:
        raise WireError("reservedFlags")
    keyframe = msg[0] == 0x82
    r = Reader(bytes(msg[2:]))
    f, strings = read_head(r, keyframe)
    space = f["nodeSpace"]
    rest = r.b[r.i:]
    d = RangeDecoder(rest)
    most = min(space, 800 * (len(rest) + 8))
    count_model = UIntModel()
    refs = [UIntModel() for _ in range(11)]

    def count():
        n = count_model.decode(d)
        if n > most:
            raise WireError("invalidValue")
        return n

    def indices(n, model):
        out, prev = [], -1
        for _ in range(n):
            i = prev + 1 + model.decode(d)
            if i >= space:
                raise WireError("invalidValue")
            out.append(i)
            prev = i
        return out

    def ref(bit):
        i = refs[bit].decode(d)
        if i >= len(strings):
            raise WireError("invalidValue")
        return strings[i]

    def vec(model, run):
        return model.decode(d, run)

    def color(models):
        c = 0
        for m in models:
            c = (c << 8) | m.decode(d)
        return c

    removed_gap, entered_gap, updated_gap = GapModel(), GapModel(), GapModel()
    f["removed"] = indices(count(), removed_gap) if not keyframe else []
    idx = indices(count(), entered_gap)
    runs = run_positions(idx)
    entered_mask = MaskModel()
    masks = [entered_mask.decode(d, 0, 1 if runs[k] else 0) for k in range(len(idx))]
    nodes = [default_node() for _ in idx]
    parent = UIntModel()
    et, er, es = VecModel(), VecModel(), VecModel()
    elargest, ecolor, evisible = TreeModel(2), [TreeModel(8) for _ in range(4)], [1024]
    for k, m in enumerate(masks):
        if m & 1:
            p = parent.decode(d)
            if p:
                v = p - 1
                nodes[k]["parent"] = idx[k] - ((v >> 1) ^ -(v & 1))
                if not 0 <= nodes[k]["parent"] < space or nodes[k]["parent"] == idx[k]:
                    raise WireError("invalidValue")
            nodes[k]["name"] = ref(0)
    for k, m in enumerate(masks):
        if m & 2:
            if nodes[k]["parent"] is not None:
                raise WireError("invalidValue")
            nodes[k]["anchor"] = ref(1)
    for k, m in enumerate(masks):
        if m & 4:
            nodes[k]["translation"] = vec(et, runs[k])
    for k, m in enumerate(masks):
        if m & 8:
            largest = elargest.decode(d)
            nodes[k]["rotation"] = [largest] + vec(er, runs[k])
    for k, m in enumerate(masks):
        if m & 16:
            nodes[k]["scale"] = [v + 1000 for v in vec(es, runs[k])]
    for k, m in enumerate(masks):
        if m & 32:
            nodes[k]["color"] = color(ecolor)
    for k, m in enumerate(masks):
        if m & 64:
            nodes[k]["visible"] = d.bit(evisible, 0) == 1
    for bit, name in ((7, "label"), (8, "asset"), (9, "layer"), (10, "zone")):
        for k, m in enumerate(masks):
            if m & (1 << bit):
                nodes[k][name] = ref(bit)
    f["entered"] = list(zip(idx, nodes))
    f["updated"] = []
    if not keyframe:
        uidx = indices(count(), updated_gap)
        uruns = run_positions(uidx)
        updated_mask = MaskModel()
        umasks = [updated_mask.decode(d, 1, 1 if uruns[k] else 0) for k in range(len(uidx))]
        ups = [{} for _ in uidx]
        ut, urd, ura, us = VecModel(), VecModel(), VecModel(), VecModel()
        uisdelta, ulargest, ucolor, uvisible = [1024], TreeModel(2), [TreeModel(8) for _ in range(4)], [1024]
        for k, m in enumerate(umasks):
            if m & 2:
                ups[k]["anchor"] = ref(1)
        for k, m in enumerate(umasks):
            if m & 4:
                ups[k]["translation"] = vec(ut, uruns[k])
        for k, m in enumerate(umasks):
            if m & 8:
                if d.bit(uisdelta, 0):
                    ups[k]["rotation"] = {"delta": True, "abc": vec(urd, uruns[k])}
                else:
                    largest = ulargest.decode(d)
                    ups[k]["rotation"] = {"delta": False, "largest": largest, "abc": vec(ura, uruns[k])}
        for k, m in enumerate(umasks):
            if m & 16:
                ups[k]["scale"] = vec(us, uruns[k])
        for k, m in enumerate(umasks):
            if m & 32:
                ups[k]["color"] = color(ucolor)
        for k, m in enumerate(umasks):
            if m & 64:
                ups[k]["visible"] = d.bit(uvisible, 0) == 1
        for bit, name in ((7, "label"), (8, "asset"), (9, "layer"), (10, "zone")):
            for k, m in enumerate(umasks):
                if m & (1 << bit):
                    ups[k][name] = ref(bit)
        f["updated"] = list(zip(uidx, ups))
    if d.overrun > RangeDecoder.MAX_OVERRUN:
        raise WireError("truncated")
    return f
