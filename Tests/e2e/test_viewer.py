"""The web viewer in headless Chromium against the running demo server: it draws the scene and keeps drawing it
(screenshots and page state), and a handoff code round-trips between two pages."""
import asyncio
import struct
import zlib

import pytest

from cdp import Browser


def decode_png(data):
    """Decodes an 8-bit RGB/RGBA PNG into (width, height, channels, rows of bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and ctype in (2, 6)
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * ch
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, ch, rows


def canvas_pixels(png, right=960, bottom=680, step=4):
    w, h, ch, rows = decode_png(png)
    return [rows[y][x * ch:x * ch + 3] for y in range(0, min(h, bottom), step) for x in range(0, min(w, right), step)]


def test_viewer_draws_and_hands_off(server):
    async def run():
        browser = Browser()
        try:
            await browser.start()
            a = await browser.open(f"http://127.0.0.1:{server.port}/?user=ada")
            await a.wait("window.sceneStream && window.sceneStream.version && window.sceneStream.drawn > 100", what="scene drawn")
            state = await a.eval("({nodes: sceneStream.nodes, keyframes: sceneStream.keyframes, status: sceneStream.status, protocol: sceneStream.protocolVersion, errors: sceneStream.errors.length})")
            assert state["status"] == "connected" and state["keyframes"] == 1 and state["nodes"] > 200
            # The viewer offers 1…3 and the server chose 3: every frame it drew was range-coded (SPEC §11; version 3's
            # frames are version 2's, §12).
            assert state["protocol"] == 3 and state["errors"] == 0, state
            # Not a blank canvas: many colours; and changing between two screenshots.
            first = canvas_pixels(await a.screenshot("/tmp/scenestream-viewer-1.png"))
            colours = len(set(first))
            assert colours > 50, colours
            v1 = await a.eval("sceneStream.version")
            await a.wait(f"sceneStream.version > {v1} + 20", what="more frames")
            second = canvas_pixels(await a.screenshot("/tmp/scenestream-viewer-2.png"))
            changed = sum(1 for p, q in zip(first, second) if p != q)
            assert changed > 20, changed
            # Alerts and room are shown.
            assert await a.eval("document.getElementById('members').children.length") >= 1

            # Handoff: page A offers, page B (same user) claims with the code from the QR URL.
            await a.click("#offer")
            code = await a.wait("sceneStream.offer && sceneStream.offer.code", what="offer code")
            assert await a.eval("document.querySelector('#qr svg') !== null")
            url = await a.eval("document.getElementById('offer-url').href")
            assert code in url
            session = await a.eval("sceneStream.sessionId")
            b = await browser.open(url)
            await b.wait("sceneStream.claimed && sceneStream.version && sceneStream.drawn > 100", what="claimed and drawn")
            assert await b.eval("sceneStream.sessionId") == session
            handed = await a.wait("sceneStream.handedOff", what="handedOff on A")
            assert handed["detached"] is True and handed["to"] == 2
            await a.wait("sceneStream.status === 'disconnected'", what="A detached")
            await b.screenshot("/tmp/scenestream-viewer-handoff.png")
            errors = [e for e in browser.console(a.session) + browser.console(b.session) if e.startswith("exception")]
            assert not errors, errors
        finally:
            browser.close()

    asyncio.run(run())
