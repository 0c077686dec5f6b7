"""A healthy client in its own process: hello, subscribe at 30 Hz, ack every frame, and print one line per frame
(arrival time, server commit time, version) until its stdin closes or it is told to stop. Only the frame header is
read, so the watcher stays cheap while a test loads the server; its own slowness cannot pass for the server's.

    python3 watcher.py URL SCENE [TOKEN]
"""
import asyncio
import sys
import time
import zlib

from websockets.asyncio.client import connect

import scenestream_wire as sw


def header(data):
    """(type, version, timeMs) of a keyframe or delta, else None."""
    t, flags = data[0], data[1]
    if t not in (0x82, 0x83):
        return None
    body = zlib.decompressobj(-15).decompress(bytes(data[2:])) if flags & 1 else bytes(data[2:])
    r = sw.Reader(body)
    version = r.varint()
    if t == 0x82:
        r.string()
        r.varint()
        r.u8()
    else:
        r.varint()
    return t, version, r.varint()


async def main(url, scene, token):
    async with connect(url, subprotocols=["scenestream.v1"], max_size=None) as ws:
        await ws.send(sw.hello(token=token, name="watcher"))
        w = sw.decode_server(await ws.recv())
        if w["type"] != "welcome":
            print(f"refused {w}", flush=True)
            return
        await ws.send(sw.subscribe(scene, rate=30))
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, sys.stdin.read)
        while not stop.done():
            try:
                data = await asyncio.wait_for(ws.recv(), 0.2)
            except asyncio.TimeoutError:
                continue
            h = header(data)
            if h:
                await ws.send(sw.ack(h[1]))
                print(f"{time.time():.4f} {h[2]} {h[1]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "demo:watcher"))
