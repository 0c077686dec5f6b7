"""A real MQTT broker (Debian's mosquitto) on a free loopback port, started and stopped by the tests."""
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="scenestream-mosquitto-")
        with open(f"{self.dir}/mosquitto.conf", "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = None
        self.start()

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", f"{self.dir}/mosquitto.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited")
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def publish(self, topic, payload, qos=1):
        exe = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
        subprocess.run([exe, "-h", "127.0.0.1", "-p", str(self.port), "-q", str(qos), "-t", topic, "-m", payload], check=True, timeout=10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
