"""Start-up and shut-down: a bad config fails with file, key and reason; SIGTERM closes clients with 1001."""
import asyncio
import json
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import scenestream_wire as sw
from conftest import ROOT, Server, binary


@pytest.mark.parametrize("config,expect", [
    ({"port": "eighty"}, "port: expected a whole number"),
    ({"tickHz": 1000}, "tickHz: 1000 is outside 1…120"),
    ({"prot": 8080}, "prot: unknown key"),
    ({"plant": "/nonexistent"}, "/nonexistent/scene.json: cannot read the file"),
])
def test_bad_config_fails_at_start(tmp_path, config, expect):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(config))
    p = subprocess.run([binary(), "serve", "--config", str(f), "--port", "0", "--data", str(tmp_path / "data")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert expect in p.stderr, p.stderr
    if "plant" not in config:
        assert str(f) in p.stderr


def test_one_server_per_data_folder(tmp_path):
    first = Server("--data", str(tmp_path / "data"))
    try:
        p = subprocess.run([binary(), "serve", "--port", "0", "--bind", "127.0.0.1", "--data", str(tmp_path / "data")], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert f"{tmp_path / 'data'}: data: in use by another scenestream process" in p.stderr, p.stderr
        assert first.json("/healthz")  # the first one serves on
    finally:
        assert first.stop() == 0
    # Once it has stopped, the folder is free again.
    again = Server("--data", str(tmp_path / "data"))
    assert again.stop() == 0


def test_bad_plant_file_names_file_and_key(tmp_path):
    plant = tmp_path / "plant"
    plant.mkdir()
    for name in ("scene.json", "rules.json", "twins.json"):
        (plant / name).write_text((ROOT / "Assets" / "plants" / "demo" / name).read_text())
    (plant / "bindings.json").write_text('{"bindings":[{"twins":"x","property":"p","node":"n","field":"colour","map":{"kind":"linear"}}]}')
    p = subprocess.run([binary(), "serve", "--plant", str(plant), "--port", "0", "--data", str(tmp_path / "data")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert f"{plant}/bindings.json: bindings[0].field: unknown field 'colour'" in p.stderr, p.stderr


def test_sigterm_closes_clients_with_1001():
    server = Server()
    try:
        async def run():
            async with connect(server.url, subprotocols=["scenestream.v1"]) as ws:
                await ws.send(sw.hello())
                await ws.recv()
                await ws.send(sw.subscribe("demo"))
                await ws.recv()
                server.proc.terminate()
                with pytest.raises(ConnectionClosed) as e:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                return e.value.rcvd.code if e.value.rcvd else None

        assert asyncio.run(run()) == 1001
        assert server.proc.wait(timeout=10) == 0
    finally:
        server.stop()
