"""TLS end to end: a self-signed certificate made here, the server configured with it, wss:// from Python and Swift."""
import asyncio
import json
import ssl
import subprocess

from websockets.asyncio.client import connect

import scenestream_wire as sw
from conftest import ROOT, Server, binary


def test_tls_end_to_end(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    cfg = tmp_path / "tls.json"
    cfg.write_text(json.dumps({"tls": {"certificate": str(cert), "key": str(key)}}))
    server = Server("--config", str(cfg))
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False

        async def run():
            async with connect(f"wss://127.0.0.1:{server.port}/stream", subprotocols=["scenestream.v1"], ssl=ctx) as ws:
                await ws.send(sw.hello())
                assert sw.decode_server(await ws.recv())["type"] == "welcome"
                await ws.send(sw.subscribe("demo"))
                r = sw.Replica()
                for _ in range(5):
                    m = sw.decode_server(await asyncio.wait_for(ws.recv(), 5))
                    if m["type"] in ("keyframe", "delta"):
                        r.apply(m)
                assert r.version and len(r.nodes) > 100

        asyncio.run(run())
        # Plain ws:// to a TLS port does not get a stream.
        async def plain():
            try:
                async with connect(f"ws://127.0.0.1:{server.port}/stream", subprotocols=["scenestream.v1"], open_timeout=5):
                    return True
            except Exception:
                return False
        assert not asyncio.run(plain())
        # The Swift client over wss:// too.
        p = subprocess.run([binary(), "watch", f"wss://127.0.0.1:{server.port}/stream", "--seconds", "2", "--json", "--insecure"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        summary = json.loads(p.stdout)
        # Without --insecure the self-signed certificate is refused.
        q = subprocess.run([binary(), "watch", f"wss://127.0.0.1:{server.port}/stream", "--seconds", "2", "--json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert json.loads(q.stdout)["frames"] == 0
        assert summary["keyframes"] == 1 and summary["frames"] > 5 and summary["nodes"] > 100
    finally:
        assert server.stop() == 0
