"""A small Chrome DevTools Protocol driver for headless Chromium (Debian's `chromium`), over Python websockets."""
import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time

from websockets.asyncio.client import connect


class Browser:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="scenestream-chromium-")
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise RuntimeError("chromium is not installed")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", f"--user-data-dir={self.dir}", "--use-angle=swiftshader",
             "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--window-size=1280,800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and len(open(port_file).read().split("\n")) >= 2):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        port, path = open(port_file).read().split("\n")[:2]
        self.ws_url = f"ws://127.0.0.1:{port}{path}"
        self.ws = None
        self.ids = itertools.count(1)
        self.waiters = {}
        self.events = []
        self.reader = None

    async def start(self):
        self.ws = await connect(self.ws_url, max_size=None)
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for raw in self.ws:
            m = json.loads(raw)
            if "id" in m and m["id"] in self.waiters:
                self.waiters.pop(m["id"]).set_result(m)
            else:
                self.events.append(m)

    async def call(self, method, params=None, session=None, timeout=30):
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[i] = fut
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        r = await asyncio.wait_for(fut, timeout)
        if "error" in r:
            raise RuntimeError(f"{method}: {r['error']}")
        return r.get("result", {})

    async def open(self, url, phone=False):
        """Opens `url` in a new tab; `phone`: a 390×844 touch screen (emulated before the page loads)."""
        target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, session)
        await self.call("Runtime.enable", session=session)
        await self.call("Page.enable", session=session)
        if phone:
            await self.call("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}, session=session)
            await self.call("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}, session=session)
            await self.call("Emulation.setEmitTouchEventsForMouse", {"enabled": True, "configuration": "mobile"}, session=session)
            await self.call("Network.enable", session=session)
            await self.call("Network.setUserAgentOverride", {
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Mobile Safari/537.36"},
                session=session)
        await self.call("Page.navigate", {"url": url}, session=session)
        return page

    def console(self, session):
        out = []
        for e in self.events:
            if e.get("sessionId") != session:
                continue
            if e.get("method") == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            if e.get("method") == "Runtime.consoleAPICalled":
                out.append(e["params"]["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session

    async def eval(self, expr):
        r = await self.b.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"].get("text", "evaluation failed"))
        return r["result"].get("value")

    async def wait(self, expr, timeout=30, what=None):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                last = await self.eval(expr)
                if last:
                    return last
            except RuntimeError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or expr} (last {last!r}); console: {self.b.console(self.session)[-10:]}")

    async def screenshot(self, path=None):
        data = base64.b64decode((await self.b.call("Page.captureScreenshot", {"format": "png"}, session=self.session))["data"])
        if path:
            with open(path, "wb") as f:
                f.write(data)
        return data

    async def mouse_click(self, x, y, count=1):
        """A real mouse press and release at page point (x, y)."""
        await self.b.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=self.session)
        for kind in ("mousePressed", "mouseReleased"):
            await self.b.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": count},
                              session=self.session)

    async def drag(self, x0, y0, x1, y1, steps=10):
        """Presses at (x0, y0), moves to (x1, y1) in steps, releases there."""
        call = self.b.call
        await call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0}, session=self.session)
        await call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": "left", "clickCount": 1},
                   session=self.session)
        for k in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps
            await call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1},
                       session=self.session)
            await asyncio.sleep(0.02)
        await call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y1, "button": "left", "clickCount": 1},
                   session=self.session)

    async def tap(self, x, y):
        """A finger's touch and lift at (x, y) (touch emulation on)."""
        point = [{"x": x, "y": y, "radiusX": 4, "radiusY": 4, "force": 1, "id": 1}]
        await self.b.call("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point}, session=self.session)
        await asyncio.sleep(0.05)
        await self.b.call("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []}, session=self.session)

    async def front(self):
        """Makes this tab the visible one (a hidden tab gets no animation frames: nothing is drawn there)."""
        await self.b.call("Page.bringToFront", {}, session=self.session)

    async def reload(self):
        await self.b.call("Page.reload", {}, session=self.session)

    async def click(self, selector):
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    async def type(self, selector, text):
        await self.eval(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(text)}")
