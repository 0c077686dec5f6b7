"""A minimal NATS client for the tests (the text protocol: CONNECT, SUB, PUB, PING/PONG, MSG), written from the
NATS protocol documentation — an independent peer on the cluster's subjects."""
import json
import socket
import time


class NATSClient:
    def __init__(self, url, name="pytest"):
        host, port = url.replace("nats://", "").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""
        info = self._line()
        assert info.startswith(b"INFO "), info
        self.sock.sendall(b"CONNECT " + json.dumps({"verbose": False, "pedantic": False, "name": name}).encode() + b"\r\n")
        self.flush()
        self.sid = 0
        self.messages = []

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("nats connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("nats connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def subscribe(self, subject):
        self.sid += 1
        self.sock.sendall(f"SUB {subject} {self.sid}\r\n".encode())
        return self.sid

    def publish(self, subject, payload):
        self.sock.sendall(f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n")

    def flush(self, timeout=5):
        """PING and wait for PONG: everything sent before is processed by the server (MSGs read meanwhile are kept)."""
        self.sock.sendall(b"PING\r\n")
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self._line()
            if line == b"PONG":
                return
            self._handle(line)
        raise TimeoutError("no PONG")

    def _handle(self, line):
        if line.startswith(b"MSG "):
            parts = line.split()
            self.messages.append((parts[1].decode(), self._read(int(parts[-1]))))
        elif line == b"PING":
            self.sock.sendall(b"PONG\r\n")

    def collect(self, seconds):
        """Reads what arrives for `seconds`."""
        end = time.time() + seconds
        self.sock.settimeout(0.1)
        try:
            while time.time() < end:
                try:
                    self._handle(self._line())
                except socket.timeout:
                    pass
        finally:
            self.sock.settimeout(5)
        return self.messages

    def close(self):
        self.sock.close()
