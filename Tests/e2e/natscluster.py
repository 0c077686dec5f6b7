"""A real nats-server cluster on loopback for the cluster tests: three servers with JetStream (file storage in a
temporary folder), client and route ports picked at random and the whole cluster started again on others if one
is taken; readiness from the servers' own logs (ready, then a JetStream metadata leader), never a sleep."""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

NATS_SERVER = os.environ.get("NATS_SERVER", "/usr/sbin/nats-server")


class NATSNode:
    def __init__(self, name, port, cluster_port, routes, store, extra=(), monitor_port=0, jetstream=True, config=None):
        self.name, self.port, self.cluster_port, self.routes, self.store = name, port, cluster_port, routes, store
        self.monitor_port, self.jetstream, self.config = monitor_port, jetstream, config
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(store), f"{name}.log")

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        if self.config:
            args = [NATS_SERVER, "-c", self.config] + args[1:]
        if self.jetstream:
            args += ["-js", "-sd", self.store]
        if self.monitor_port:
            args += ["-m", str(self.monitor_port)]
        if self.cluster_port:
            args += ["--cluster_name", "scenestream-test", "--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if self.routes:
                args += ["--routes", ",".join(self.routes)]
        args += self.extra
        self.log_start = len(self.log_text())
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()[self.log_start:]
            if "Server is ready" in text:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def monitor(self, path):
        import json
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2) as r:
            return json.loads(r.read())

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


class NATSCluster:
    def __init__(self, count=3, leaf_port=False):
        """With `leaf_port`, server 0 also takes leaf node connections (on `self.leaf_port`)."""
        self.folder = tempfile.mkdtemp(prefix="scenestream-nats-")
        last = ""
        for _attempt in range(6):
            base = random.randint(20000, 55000)
            ports = [base + k for k in range(count)]
            cports = [base + 100 + k for k in range(count)]
            self.nodes = []
            ok = True
            for k in range(count):
                routes = [f"nats://127.0.0.1:{p}" for j, p in enumerate(cports) if j != k] if count > 1 else []
                conf = None
                if leaf_port:
                    # The cloud's JetStream is domain "cloud": a plant's leaf node without JetStream reaches it so.
                    self.leaf_port = base + 300
                    conf = os.path.join(self.folder, f"hub-{k}.conf")
                    with open(conf, "w") as f:
                        f.write("jetstream { domain: cloud }\n")
                        if k == 0:
                            f.write(f"leafnodes {{ listen: \"127.0.0.1:{self.leaf_port}\" }}\n")
                n = NATSNode(f"n{k}", ports[k], cports[k] if count > 1 else 0, routes, os.path.join(self.folder, f"n{k}"),
                             monitor_port=base + 200 + k, config=conf)
                n.start()
                self.nodes.append(n)
            for n in self.nodes:
                if not n.wait_ready():
                    ok = False
                    last = n.log_text()[-800:]
            if ok and self.wait_jetstream():
                return
            for n in self.nodes:
                n.stop()
            shutil.rmtree(self.folder, ignore_errors=True)
            os.makedirs(self.folder)
        raise RuntimeError("nats cluster did not start: " + last)

    def wait_jetstream(self, timeout=30):
        """Every running server is routed to every other and knows the JetStream metadata leader (asked through
        the servers' monitoring endpoints)."""
        if len(self.nodes) == 1:
            return True
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                up = [n for n in self.nodes if n.proc and n.proc.poll() is None]
                routed = all(n.monitor("/routez")["num_routes"] >= len(up) - 1 for n in up)
                metas = {n.name: n.monitor("/jsz").get("meta_cluster", {}) for n in up}
                leader = all(m.get("leader") for m in metas.values())
                # The leader knows every other server as a current peer (else R3 placement fails: "no suitable
                # peers for placement").
                peers = [m.get("replicas", []) for name, m in metas.items() if m.get("leader") == name]
                leader = leader and len(peers) == 1 and len(peers[0]) >= len(up) - 1 and all(r.get("current") for r in peers[0])
                # Every replicated stream has a leader and its replicas are current (after a restart, each stream
                # elects again; until then it answers nothing).
                # (as its leader reports it: other servers' view of replicas is not current).
                reports = [(n.name, st) for n in up for a in n.monitor("/jsz?streams=true").get("account_details", [])
                           for st in a.get("stream_detail", [])]
                names = {st["name"] for _, st in reports}
                by_leader = {st["name"]: st for name, st in reports if st.get("cluster", {}).get("leader") == name}
                settled = names == set(by_leader) and all(
                    all(r.get("current") for r in st["cluster"].get("replicas", [])) for st in by_leader.values())
                if routed and leader and settled:
                    return True
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        return False

    @property
    def urls(self):
        return ",".join(n.url for n in self.nodes)

    def stop_node(self, k, kill=False):
        self.nodes[k].stop(kill=kill)

    def restart_node(self, k):
        """Starts server `k` again on its ports and storage, and waits until it is back in the cluster."""
        self.nodes[k].start()
        assert self.nodes[k].wait_ready(), self.nodes[k].log_text()[-800:]
        assert self.wait_jetstream(), self.nodes[k].log_text()[-800:]

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def plant_leaf(hub_leaf_port, folder, deny_imports):
    """A plant's own nats-server, a leaf node of the cloud cluster: no JetStream of its own (the stream and buckets
    live in the cloud), and `deny_imports`: subjects the cloud may not send into the plant."""
    for _attempt in range(6):
        port = random.randint(20000, 55000)
        conf = os.path.join(folder, f"plant-{port}.conf")
        with open(conf, "w") as f:
            f.write("leafnodes {\n  remotes = [\n    {\n")
            f.write(f"      url: \"nats-leaf://127.0.0.1:{hub_leaf_port}\"\n")
            f.write("      deny_imports: [" + ", ".join(f'\"{s}\"' for s in deny_imports) + "]\n")
            f.write("    }\n  ]\n}\n")
        n = NATSNode(f"plant-{port}", port, 0, [], os.path.join(folder, f"plant-{port}"), jetstream=False, config=conf,
                     monitor_port=port + 1)
        n.start()
        if n.wait_ready():
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    if n.monitor("/leafz").get("leafnodes", 0) >= 1:
                        return n
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
        n.stop()
    raise RuntimeError("plant leaf node did not connect")
