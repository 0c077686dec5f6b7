"""The independent Python decoder agrees with Protocol/vectors (written from SPEC.md, sharing no code)."""
import json
import pathlib

import pytest

import scenestream_wire as sw

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "Protocol" / "vectors"


def load(name):
    return (VECTORS / f"{name}.bin").read_bytes(), json.loads((VECTORS / f"{name}.json").read_text())


SERVER = sorted(p.stem for p in VECTORS.glob("server-*.bin"))
INVALID_S2C = sorted(p.stem for p in VECTORS.glob("invalid-*.bin")
                     if json.loads((VECTORS / f"{p.stem}.json").read_text())["direction"] == "server-to-client")


@pytest.mark.parametrize("name", SERVER)
def test_server_vector_decodes(name):
    data, desc = load(name)
    assert desc["hex"] == data.hex()
    m = sw.decode_server(data)
    want = desc["message"]
    assert m["type"] == want["type"]
    if m["type"] in ("keyframe", "delta"):
        assert str(m["version"]) == want["version"]
        assert str(m["timeMs"]) == want["timeMs"]
        assert m["nodeSpace"] == want["nodeSpace"]
        got = {i: n for i, n in m["entered"]}
        assert sorted(got) == [e["index"] for e in want["entered"]]
        for e in want["entered"]:
            n = got[e["index"]]
            for k, v in e.items():
                if k == "index":
                    continue
                if k == "rotation":
                    assert n[k] == [v["largest"]] + v["abc"]
                else:
                    assert n[k] == v, (e["index"], k)
        if m["type"] == "delta":
            assert str(m["base"]) == want["baseVersion"]
            assert m["removed"] == want["removed"]
            assert [i for i, _ in m["updated"]] == [u["index"] for u in want["updated"]]
            for (i, u), w in zip(m["updated"], want["updated"]):
                if "translationDelta" in w:
                    assert u["translation"] == w["translationDelta"]
                if "rotationDelta" in w:
                    assert u["rotation"] == {"delta": True, "abc": w["rotationDelta"]}
                if "rotation" in w:
                    assert u["rotation"] == {"delta": False, "largest": w["rotation"]["largest"], "abc": w["rotation"]["abc"]}
                if "scaleDelta" in w:
                    assert u["scale"] == w["scaleDelta"]
                for k in ("label", "color", "visible", "anchor", "asset", "layer", "zone"):
                    if k in w:
                        assert u[k] == w[k], (k, u, w)
                # Every field the description names was decoded, and nothing else.
                named = {k.replace("Delta", "") for k in w if k != "index"}
                assert set(u) == named, (set(u), named)
    elif m["type"] == "anchors":
        assert m["sceneId"] == want["sceneId"]
        assert [dict(a, updatedMs=str(a["updatedMs"])) for a in m["anchors"]] == want["anchors"]
    elif m["type"] in ("welcome", "error", "pong"):
        for k, v in want.items():
            if k in ("type", "codeName"):
                continue
            assert str(m[k]) == str(v), k


@pytest.mark.parametrize("name", INVALID_S2C)
def test_invalid_server_vector_is_refused(name):
    data, desc = load(name)
    with pytest.raises(sw.WireError) as e:
        sw.decode_server(data)
    assert str(e.value).startswith(desc["error"])


# Client vectors this decoder's encoders can make, from their descriptions: they must give the same bytes.
CLIENT_ENCODERS = {
    "ack": lambda m: sw.ack(int(m["version"])),
    "ping": lambda m: sw.ping(int(m["nonce"])),
    "follow": lambda m: sw.follow(m["userId"]),
    "requestKeyframe": lambda m: sw.request_keyframe(m["requestId"]),
    "listSessions": lambda m: sw.list_sessions(m["requestId"]),
    "select": lambda m: sw.select(m["nodes"]),
    "subscribe": lambda m: sw.subscribe(
        m["sceneId"], request_id=m["requestId"], rate=m["rateHz"], layers=m["layers"], zones=m["zones"],
        budget=m["byteBudget"], region=(m["region"]["anchor"], m["region"]["min"], m["region"]["max"]) if m.get("region") else None),
}
CLIENT = sorted(p.stem for p in VECTORS.glob("client-*.bin")
                if json.loads((VECTORS / f"{p.stem}.json").read_text())["message"]["type"] in CLIENT_ENCODERS)


@pytest.mark.parametrize("name", CLIENT)
def test_client_vector_is_encoded_byte_exactly(name):
    data, desc = load(name)
    assert CLIENT_ENCODERS[desc["message"]["type"]](desc["message"]) == data


V2 = sorted(p.stem for p in VECTORS.glob("v2-*.bin"))


@pytest.mark.parametrize("name", V2)
def test_version_2_vector_decodes_to_the_same_frame_as_version_1(name):
    """Each v2 vector is a v1 frame vector range-coded: this decoder (written from SPEC §11) gives the same frame."""
    data, desc = load(name)
    assert desc["hex"] == data.hex() and desc["protocolVersion"] == 2
    v1, _ = load(name[len("v2-"):])
    assert sw.decode_frame_v2(data) == sw.decode_server(v1)


def test_version_2_cut_or_changed_is_refused_or_decodes_without_reading_past_its_end():
    data, _ = load("v2-server-delta")
    refused = 0
    for cut in range(len(data)):
        try:
            sw.decode_frame_v2(data[:cut])
        except sw.WireError:
            refused += 1
    assert refused > 0


def test_the_sequence_applied_in_order_gives_its_replica():
    r = sw.Replica()
    for k in (1, 2, 3):
        r.apply(sw.decode_server(load(f"server-sequence-{k}")[0]))
    want = sw.Replica()
    want.apply(sw.decode_server(load("server-sequence-replica")[0]))
    assert r.version == 12 and r.nodes == want.nodes
    # Out of order the delta is refused and the replica stays as it was.
    early = sw.Replica()
    early.apply(sw.decode_server(load("server-sequence-1")[0]))
    with pytest.raises(sw.WireError):
        early.apply(sw.decode_server(load("server-sequence-3")[0]))
    assert early.version == 10 and len(early.nodes) == 4


def test_keyframe_then_delta_replica():
    r = sw.Replica()
    r.apply(sw.decode_server(load("server-keyframe")[0]))
    assert r.version == 42 and len(r.nodes) == 3
    assert r.nodes[1]["translation"] == [2500, 0, -2200]
