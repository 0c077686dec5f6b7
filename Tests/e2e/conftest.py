"""Starts the real `scenestream` binary on a free loopback port for each test module, and stops it after."""
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).parent))


def binary():
    b = os.environ.get("SCENESTREAM_BIN", str(ROOT / ".build" / "debug" / "scenestream"))
    if not os.path.exists(b):
        pytest.fail(f"{b} not built (swift build first, or set SCENESTREAM_BIN)")
    return b


def release_binary():
    """The release build, for tests that watch timing (the debug build cannot stream the reference plant at 30 Hz);
    test.sh builds it first and names it in SCENESTREAM_RELEASE_BIN. Falls back to the binary under test."""
    b = os.environ.get("SCENESTREAM_RELEASE_BIN", "")
    return b if b and os.path.exists(b) else binary()


class Server:
    def __init__(self, *args, exe=None):
        import tempfile
        self.log = tempfile.NamedTemporaryFile(prefix="scenestream-server-", suffix=".log", delete=False)
        # Its own data folder unless the test brings a configuration: one server per data folder.
        brings_data = "--data" in args
        if "--config" in args:
            try:
                brings_data = brings_data or "data" in json.loads(pathlib.Path(args[args.index("--config") + 1]).read_text())
            except (OSError, ValueError, IndexError):
                brings_data = True  # a bad config is what the test is about: leave it alone
        self.own_data = None if brings_data else tempfile.mkdtemp(prefix="scenestream-data-")
        own = ["--data", self.own_data] if self.own_data else []
        self.proc = subprocess.Popen(
            [exe or binary(), "serve", "--port", "0", "--bind", "127.0.0.1", "--log-level", "notice", *own, *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        deadline = time.time() + 60
        lines = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("listening on port "):
                self.port = int(line.split()[-1])
                break
        if self.port is None:
            self.stop()
            pytest.fail("server did not start: " + "".join(lines) + self.log_tail())

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/stream"

    def http(self, path, body=None, token=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()

    def json(self, path, body=None, token=None):
        return json.loads(self.http(path, body, token)[1])

    def rss_kb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_tail(self, n=4000):
        try:
            with open(self.log.name, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, -9):
            print("server log:\n" + self.log_tail())
        if self.own_data:
            import shutil
            shutil.rmtree(self.own_data, ignore_errors=True)
        return self.proc.returncode


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    code = s.stop()
    assert code == 0, f"server exited with {code}"
