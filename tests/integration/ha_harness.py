"""ha_harness.py: several kcwatch instances sharing clusters through a real etcd.

Etcd starts Debian's /usr/bin/etcd members on free loopback ports, each with
its own data dir under the test's temp dir (one member, or three for quorum
loss); members stop and start again by PID and keep their data. HaWorld owns
one test's world: fake Connect clusters, one webhook sink, the etcd members
and kcwatch instances; each Instance is a harness.Harness whose fakes and
sink are the world's, with an ha: block pointing at the etcd members.
Everything is killed by PID in close(), whatever happened.

Attribution: each instance has its own admin port, and the webhook payload's
externalURL names it, so a delivery tells which instance sent it; restarts
are attributed by the instance's own "restart sent" log lines and by the
action record the ownership txn writes to etcd.
"""

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

import harness
from harness import Harness, free_port
from fake_connect import FakeConnectCluster
from webhook_sink import WebhookSink

ETCD_BIN = "/usr/bin/etcd"
TTL = 3          # lease TTL (s) the tests run with
POLL = 0.2       # Connect poll interval (s)
PREFIX = "/kcwatch-test"


class MissingEtcd(Exception):
    pass


def etcd_bin():
    if not os.access(ETCD_BIN, os.X_OK):
        raise MissingEtcd("%s not found: install etcd-server (packaging/install-deps.sh)"
                          % ETCD_BIN)
    return ETCD_BIN


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def log_time(rec):
    """Epoch seconds of a log record's ts (RFC 3339, UTC, milliseconds)."""
    return datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def http_json(url, body=None, timeout=2.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


class Etcd:
    """n etcd members forming one cluster on loopback (or on `host`)."""

    def __init__(self, tmp, n=1, host="127.0.0.1"):
        self.tmp = tmp
        self.host = host
        self.names = ["m%d" % i for i in range(n)]
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.procs = [None] * n
        self.logs = []
        self.initial = ",".join("%s=http://%s:%d" % (nm, host, p)
                                for nm, p in zip(self.names, self.peer_ports))

    @property
    def urls(self):
        return ["http://%s:%d" % (self.host, p) for p in self.client_ports]

    def start_member(self, i):
        d = os.path.join(self.tmp, "etcd-%s" % self.names[i])
        log = open(os.path.join(self.tmp, "etcd-%s.log" % self.names[i]), "ab")
        self.logs.append(log)
        client = "http://%s:%d" % (self.host, self.client_ports[i])
        peer = "http://%s:%d" % (self.host, self.peer_ports[i])
        self.procs[i] = subprocess.Popen(
            [etcd_bin(), "--name", self.names[i], "--data-dir", d,
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", self.initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", "kcw-%d" % self.client_ports[0],
             # Fast elections keep quorum tests short; still sane on loopback.
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def start(self):
        for i in range(len(self.names)):
            self.start_member(i)
        self.wait_healthy()
        return self

    def healthy(self, i=None):
        idx = range(len(self.names)) if i is None else [i]
        for j in idx:
            try:
                if http_json(self.urls[j] + "/health", timeout=1).get("health") != "true":
                    return False
            except (OSError, ValueError):
                return False
        return True

    def wait_healthy(self, timeout=30):
        harness.wait_until(self.healthy, timeout, "etcd to become healthy", interval=0.05)

    def stop_member(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            p.wait(10)
        self.procs[i] = None

    def stop(self):
        for i in range(len(self.names)):
            self.stop_member(i)

    def leader(self):
        """Index of the current leader (None when no member knows one)."""
        ids = {}
        leader = None
        for i, url in enumerate(self.urls):
            try:
                st = http_json(url + "/v3/maintenance/status", {})
            except OSError:
                continue
            ids[st["header"]["member_id"]] = i
            leader = st.get("leader", leader)
        return ids.get(leader)

    def get_prefix(self, prefix):
        """{key: (value, lease)} under prefix, read through any live member."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        for url in self.urls:
            try:
                r = http_json(url + "/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})
            except OSError:
                continue
            return {unb64(kv["key"]): (unb64(kv.get("value", "")), kv.get("lease"))
                    for kv in r.get("kvs", [])}
        raise AssertionError("no etcd member answered")

    def close(self):
        self.stop()
        for f in self.logs:
            f.close()


class Instance(Harness):
    """One kcwatch daemon of a world; shares the world's fakes and sink."""

    def __init__(self, world, name, netns=None):
        Harness.__init__(self, "ha-" + name, start_fakes=False)
        self.world = world
        self.instance = name
        self.fake = world.fakes[0]
        self.sink = world.sink
        self.netns = netns
        self.port = free_port()
        self.host = "127.0.0.1"

    def base_config(self):
        w = self.world
        clusters = [{"name": name, "urls": list(fake.urls), "poll_interval": "%dms" % (POLL * 1000),
                     "timeout": "1s"}
                    for name, fake in zip(w.cluster_names, w.fakes)]
        cfg = Harness.base_config(self)
        cfg["global"]["listen"] = "%s:%d" % (self.host, self.port)
        cfg["global"]["evaluation_interval"] = "500ms"
        cfg["connect"] = clusters
        cfg["receivers"] = [{"name": "hook", "webhook": {"url": w.sink_url + "/hook"}}]
        cfg["ha"] = {"instance": self.instance,
                     "etcd": {"endpoints": list(w.etcd_urls or w.etcd.urls), "prefix": PREFIX,
                              "ttl": "%ds" % TTL}}
        return cfg

    def start(self, rules=None, overrides=None):
        if self.netns:
            # The daemon runs inside the namespace; everything else stays out.
            binary = harness.kcwatch_bin()
            wrapper = self.write("kcwatch-in-netns.sh",
                                 "#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n"
                                 % (self.netns, binary))
            os.chmod(wrapper, 0o755)
            saved = os.environ.get("KCWATCH_BIN")
            os.environ["KCWATCH_BIN"] = wrapper
            try:
                return self.start_daemon(overrides, rules, wait_polls=0)
            finally:
                os.environ["KCWATCH_BIN"] = saved
        return self.start_daemon(overrides, rules, wait_polls=0)

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def api(self, path):
        try:
            return http_json(self.url + path, timeout=2)
        except (OSError, ValueError):
            return None

    def ha(self):
        r = self.api("/api/v1/ha")
        return r["data"] if r and r.get("status") == "success" else None

    def acting(self):
        """Clusters this instance says it acts for right now (None: no answer)."""
        d = self.ha()
        if d is None:
            return None
        return sorted(o["cluster"] for o in d["owners"] if o["acting"])

    def metrics(self):
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def run_status(self, *args):
        """`kcwatch status` on this instance's config: its stdout."""
        r = subprocess.run([harness.kcwatch_bin(), "status", "-c", self.config_path] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        return r.stdout.decode() + r.stderr.decode()

    def restarts_sent(self, start_line=0):
        return self.log_records(start_line, msg="restart sent")

    def deliveries(self, after=None, cluster_alerts_only=False):
        """Webhook deliveries this instance made (by externalURL); optionally
        only those about cluster alerts (not its own KcwatchEtcdUnavailable)."""
        def about_clusters(d):
            return any(a.get("labels", {}).get("alertname") != "KcwatchEtcdUnavailable"
                       for a in d.payload.get("alerts") or [])
        return [d for d in self.world.sink.deliveries()
                if str(d.payload.get("externalURL", "")).rstrip("/") == self.ext_url()
                and (after is None or d.time >= after)
                and (not cluster_alerts_only or about_clusters(d))]

    def ext_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def kill(self, sig=signal.SIGKILL):
        os.killpg(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(5)

    def close(self):
        # The world owns the fakes and sink; the harness must not stop them.
        self.fake = None
        self.sink = None
        Harness.close(self)


class HaWorld:
    def __init__(self, name, clusters=("c1",), etcd_members=1, workers=1, etcd_host="127.0.0.1",
                 connect_host="127.0.0.1", restart_process_delay=0.1):
        self.tmp = tempfile.mkdtemp(prefix="kcw-ha-%s-" % name)
        self.cluster_names = list(clusters)
        self.fakes = []
        self.sink = None
        self.etcd = None
        self.etcd_urls = None
        self.instances = []
        try:
            for _ in clusters:
                self.fakes.append(FakeConnectCluster(
                    workers=workers, host=connect_host,
                    restart_process_delay=restart_process_delay,
                    restarting_delay=0.4).start())
            self.sink = WebhookSink(host=connect_host).start()
            self.sink_url = self.sink.url
            self.etcd = Etcd(self.tmp, etcd_members, host=etcd_host).start()
        except BaseException:
            self.close()
            raise

    @property
    def fake(self):
        return self.fakes[0]

    def instance(self, name, **kw):
        inst = Instance(self, name, **kw)
        self.instances.append(inst)
        return inst

    def owners(self):
        """{cluster: owner instance} as etcd has it."""
        d = self.etcd.get_prefix(PREFIX + "/owners/")
        return {k[len(PREFIX + "/owners/"):]: v for k, (v, _) in d.items()}

    def wait(self, pred, timeout=None, what="condition", interval=0.03):
        timeout = harness.DEFAULT_TIMEOUT if timeout is None else timeout
        return harness.wait_until(
            pred, timeout, what, interval=interval,
            on_timeout=lambda: "\n".join("--- %s ---\n%s" % (i.instance, i.log_tail(25))
                                         for i in self.instances))

    def wait_settled(self, n_instances, timeout=None, balanced=False):
        """Every cluster acted for by exactly one of the first n instances
        (and, if balanced, the clusters spread evenly over all of them)."""
        def settled():
            acts = [i.acting() for i in self.instances[:n_instances]]
            if any(a is None for a in acts):
                return None
            loads = [len([c for c in a if c != "_promql"]) for a in acts]
            if balanced and max(loads) - min(loads) > 1:
                return None
            flat = sorted(c for a in acts for c in a)
            keys = sorted(self.cluster_names + (["_promql"] if len(self.cluster_names) > 1
                                                else []))
            return acts if flat == keys else None
        return self.wait(settled, timeout, what="ownership to settle over %d instances"
                         % n_instances)

    def check(self, cond, msg):
        if not cond:
            tails = "\n".join("--- %s ---\n%s" % (i.instance, i.log_tail(40))
                              for i in self.instances)
            raise AssertionError("%s\n%s" % (msg, tails))

    def close(self):
        for i in self.instances:
            try:
                if i.proc is not None and i.proc.poll() is None:
                    # SIGSTOPped ones must wake to die cleanly.
                    os.killpg(i.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            i.close()
        if self.etcd is not None:
            self.etcd.close()
        for f in self.fakes:
            f.stop()
        if self.sink is not None:
            self.sink.stop()
        harness.remove_tmp(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_tests(namespace):
    try:
        etcd_bin()
    except MissingEtcd as e:
        print("FAIL: %s" % e)
        raise SystemExit(1)
    harness.run_tests(namespace)
