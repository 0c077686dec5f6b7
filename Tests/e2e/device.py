"""A test device: one WebSocket connection that keeps a replica, acknowledges frames and records everything."""
import asyncio
import json
import time

from websockets.asyncio.client import connect

import scenestream_wire as sw


def path(replica, index):
    parts = []
    n = replica.nodes.get(index)
    while n is not None:
        parts.append(n["name"])
        n = replica.nodes.get(n["parent"]) if n["parent"] is not None else None
    return "/".join(reversed(parts))


class Device:
    def __init__(self, url, token="", device=2, name="dev", rate=30, resume_token="", resume_version=0, layers=(), scene="demo",
                 max_version=1):
        self.scene = scene
        self.max_version = max_version
        self.version = 1  # the protocol version the welcome chose
        self.anchors = None  # the last `anchors` message's list (version 3)
        self.url, self.token, self.device, self.name, self.rate = url, token, device, name, rate
        self.resume_token, self.resume_version, self.layers = resume_token, resume_version, layers
        self.replica = sw.Replica()
        self.messages = []
        self.frames = []
        self.times = []
        self.order = []  # every message's type in arrival order, with a frame's version or a sessionState's mode
        self.welcome = None
        self.members = []  # the room as this device knows it
        self.member_history = []  # the member list after each sessionState / roomMembers
        self.closed = None
        self.ws = None
        self.task = None
        self.acks = True

    async def open(self, subscribe=True):
        self.ws = await connect(self.url, subprotocols=["scenestream.v1"], max_size=None)
        await self.ws.send(sw.hello(device=self.device, name=self.name, token=self.token,
                                    resume_token=self.resume_token, resume_version=self.resume_version,
                                    max_version=self.max_version))
        self.welcome = sw.decode_server(await asyncio.wait_for(self.ws.recv(), 10))
        if self.welcome["type"] != "welcome":
            return self
        self.version = self.welcome["version"]
        if subscribe:
            await self.ws.send(sw.subscribe(self.scene, rate=self.rate, layers=list(self.layers)))
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            async for data in self.ws:
                m = sw.decode_server(data, self.version)
                self.order.append((m["type"], m["version"] if m["type"] in ("keyframe", "delta")
                                   else m["playback"]["mode"] if m["type"] == "sessionState" else None))
                if m["type"] in ("keyframe", "delta"):
                    self.replica.apply(m)
                    self.frames.append((m["type"], m.get("base"), m["version"]))
                    self.times.append(m["timeMs"])
                    if self.acks:
                        await self.ws.send(sw.ack(m["version"]))
                else:
                    self.messages.append(m)
                    if m["type"] == "anchors":
                        self.anchors = m["anchors"]
                    if m["type"] in ("sessionState", "roomMembers"):
                        self.members = sw.apply_members(self.members, m)
                        self.member_history.append(self.members)
        except Exception as e:  # closed: recorded
            self.closed = e
        code = self.ws.close_code
        self.closed = code if code is not None else self.closed

    async def send(self, data):
        await self.ws.send(data)

    async def wait(self, cond, timeout=10.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.name}: timed out waiting for {what}")

    def find(self, msg_type, **match):
        for m in self.messages:
            if m["type"] == msg_type and all(m.get(k) == v for k, v in match.items()):
                return m
        return None

    def paths(self):
        return {path(self.replica, i): n for i, n in self.replica.nodes.items()}

    def index_of(self, p):
        for i in self.replica.nodes:
            if path(self.replica, i) == p:
                return i
        return None

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await self.task


def pause(server, running=False):
    server.http("/api/simulator", json.dumps({"running": running}).encode())


def scene(server):
    return server.json("/api/scene")
