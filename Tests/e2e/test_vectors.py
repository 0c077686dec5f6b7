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
                for k in ("label", "color", "visible"):
                    if k in w:
                        assert u[k] == w[k]
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


def test_keyframe_then_delta_replica():
    r = sw.Replica()
    r.apply(sw.decode_server(load("server-keyframe")[0]))
    assert r.version == 42 and len(r.nodes) == 3
    assert r.nodes[1]["translation"] == [2500, 0, -2200]
