#!/usr/bin/env python3
"""stack.py: the real monitoring stack on loopback, for tests and by hand.

It runs what users run, from the jars of Maven Central and Debian's packages:

- a single-node KRaft Kafka broker (kafka_2.13 + kafka-server, `kafka.Kafka`),
- one or more distributed Kafka Connect workers (connect-runtime, with
  connect-file for the FileStream connectors) carrying the Prometheus JMX
  exporter java agent with packaging/jmx-exporter/kafka-connect.yml,
- Prometheus (/usr/bin/prometheus) with packaging/prometheus/prometheus.yml
  (its targets rewritten to this run's ports) and rules.d/connect-jmx.yaml,
- a webhook sink (tests/fakes/webhook_sink.py) and kcwatch.

Every listener is on 127.0.0.1 at a port chosen at run time; every process
runs in its own process group and is stopped by its PID. The jars are
resolved by `mvn` from tests/stack/pom.xml: online the first time, from
~/.m2 afterwards (an offline attempt comes first). KCWATCH_STACK_MAVEN_SETTINGS
names a Maven settings.xml to use instead of the default (mirrors, proxies).

By hand (a sandbox; Ctrl-C or SIGTERM stops everything and removes the temp
dir unless --keep):

    python3 tests/stack/stack.py up [--kcwatch build/kcwatch] [--workers 2]

From tests:

    st = Stack().start()            # broker, worker(s), Prometheus, sink
    st.start_kcwatch(config_dict)
    ...
    st.close()
"""

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))

import harness  # noqa: E402
from prom_harness import PrometheusServer, http_json  # noqa: E402
from webhook_sink import WebhookSink  # noqa: E402

def import_yaml():
    """PyYAML, or None. Debian's python3-yaml (install-deps.sh) is found even
    when python3 on PATH is another interpreter without it."""
    try:
        import yaml
        return yaml
    except ImportError:
        pass
    debian = "/usr/lib/python3/dist-packages"
    if os.path.isdir(os.path.join(debian, "yaml")) and debian not in sys.path:
        sys.path.append(debian)
        try:
            import yaml
            return yaml
        except ImportError:
            pass
    return None


yaml = import_yaml()

POM = os.path.join(HERE, "pom.xml")
EXPORTER_CONFIG = os.path.join(ROOT, "packaging", "jmx-exporter", "kafka-connect.yml")
EXPORT_ALL_CONFIG = os.path.join(HERE, "export-all.yml")
PROM_CONFIG = os.path.join(ROOT, "packaging", "prometheus", "prometheus.yml")
JMX_RULES = os.path.join(ROOT, "rules.d", "connect-jmx.yaml")
CONNECT_JOB = "kafka-connect"
KCWATCH_JOB = "kcwatch"
STARTUP_TIMEOUT = float(os.environ.get("KCWATCH_STACK_STARTUP_TIMEOUT") or 120)


class StackUnavailable(Exception):
    """The stack cannot run on this machine (no Maven Central, no java...)."""


def free_port():
    return harness.free_port()


def wait_until(pred, timeout, what, on_timeout=None, interval=0.2):
    return harness.wait_until(pred, timeout, what, on_timeout, interval)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return "(no %s)" % path
    return "--- %s ---\n%s" % (os.path.basename(path), "\n".join(lines[-n:]))


def rest(method, url, body=None, timeout=30.0):
    """(status, decoded JSON or None, raw text) of one REST call; status 0
    when the connection failed."""
    return http_json(url, timeout, method, body)


# ---------------------------------------------------------------- jars

def resolve_jars(workdir):
    """(classpath string, agent jar path) from tests/stack/pom.xml; offline
    from ~/.m2 when everything is there, else online. Raises StackUnavailable
    with mvn's own words when Maven Central cannot be reached."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackUnavailable("mvn is not installed: run packaging/install-deps.sh "
                               "(Debian packages maven, openjdk-17-jdk-headless)")
    if not shutil.which("java"):
        raise StackUnavailable("java is not installed: run packaging/install-deps.sh")
    cp_file = os.path.join(workdir, "classpath.txt")
    agent_dir = os.path.join(workdir, "agent")
    log = os.path.join(workdir, "mvn.log")
    goals = ["dependency:build-classpath", "-Dmdep.outputFile=" + cp_file,
             "dependency:copy", "-DoutputDirectory=" + agent_dir]
    # A settings.xml of one's own (a mirror, a proxy, another local repository).
    settings = []
    if os.environ.get("KCWATCH_STACK_MAVEN_SETTINGS"):
        settings = ["-s", os.environ["KCWATCH_STACK_MAVEN_SETTINGS"]]
    last = ""
    for offline in (True, False):
        cmd = [mvn, "-B", "-q", "-f", POM] + (["-o"] if offline else []) + settings + goals
        with open(log, "ab") as f:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        if rc == 0:
            break
        last = tail(log, 15)
    else:
        raise StackUnavailable(
            "cannot resolve the stack's jars from Maven Central (tests/stack/pom.xml: "
            "Kafka, Connect, JMX exporter); is Maven Central reachable from this "
            "machine?\n" + last)
    with open(cp_file) as f:
        cp = f.read().strip()
    agent = os.path.join(agent_dir, "jmx_prometheus_javaagent.jar")
    if not cp or not os.path.isfile(agent):
        raise StackUnavailable("mvn ran but left no classpath or agent jar (%s)" % log)
    return cp, agent


LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def props(path, d):
    with open(path, "w") as f:
        for k, v in d.items():
            f.write("%s=%s\n" % (k, v))
    return path


# ---------------------------------------------------------------- processes

class JavaProcess:
    """One JVM in its own process group, output in DIR/NAME.out."""

    def __init__(self, name, workdir, argv, heap="384m"):
        self.name = name
        self.dir = workdir
        self.argv = argv
        self.heap = heap
        self.proc = None
        self.out_path = os.path.join(workdir, name + ".out")
        self.log_path = os.path.join(workdir, name + ".log")

    def start(self, jvm_opts=()):
        os.makedirs(self.dir, exist_ok=True)
        l4j = os.path.join(self.dir, "log4j2-%s.properties" % self.name)
        with open(l4j, "w") as f:
            f.write(LOG4J2 % self.log_path)
        cmd = ["java", "-Xms128m", "-Xmx" + self.heap, "-XX:+UseSerialGC",
               "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true",
               "-Dlog4j2.configurationFile=" + l4j] + list(jvm_opts) + self.argv
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        finally:
            out.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL, timeout=30.0):
        """Signals the process group by PID and waits for the exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def stop(self, timeout=30.0):
        return self.kill(signal.SIGTERM, timeout)

    def tails(self, n=40):
        return tail(self.out_path, n) + "\n" + tail(self.log_path, n)


class Broker:
    def __init__(self, workdir, classpath):
        self.dir = os.path.join(workdir, "broker")
        self.cp = classpath
        self.port = free_port()
        self.controller_port = free_port()
        self.config = os.path.join(self.dir, "server.properties")
        self.jvm = None

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        props(self.config, {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": "1@127.0.0.1:%d" % self.controller_port,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d"
                         % (self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": os.path.join(self.dir, "data"),
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 3,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
        })
        # An id starting with '-' reads as an option to kafka-storage's argument
        # parser (1 in 64 of them): Kafka's own Uuid.randomUuid() skips those too.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = JavaProcess("storage-format", self.dir,
                          ["-cp", self.cp, "kafka.tools.StorageTool", "format", "-t",
                           cluster_id, "-c", self.config], heap="256m").start()
        rc = fmt.proc.wait(120)
        if rc != 0:
            raise AssertionError("formatting the KRaft storage failed (rc=%s)\n%s"
                                 % (rc, fmt.tails()))
        self.jvm = JavaProcess("broker", self.dir,
                               ["-cp", self.cp, "kafka.Kafka", self.config], heap="512m")
        self.jvm.start()
        wait_until(self._ready, STARTUP_TIMEOUT, "the Kafka broker on %s" % self.bootstrap,
                   on_timeout=self.jvm.tails)
        return self

    def _ready(self):
        if not self.jvm.alive():
            raise AssertionError("the Kafka broker exited (rc=%s)\n%s"
                                 % (self.jvm.proc.returncode, self.jvm.tails()))
        try:
            with open(self.jvm.log_path, "rb") as f:
                return b"Kafka Server started" in f.read()
        except FileNotFoundError:
            return False

    def close(self):
        if self.jvm:
            self.jvm.stop()


class Worker:
    """A distributed Connect worker with the JMX exporter agent."""

    def __init__(self, workdir, index, classpath, agent, bootstrap, exporter_config,
                 group_id="kcwatch-stack"):
        self.index = index
        self.dir = os.path.join(workdir, "worker%d" % index)
        self.cp = classpath
        self.agent = agent
        self.bootstrap = bootstrap
        self.exporter_config = exporter_config
        self.group_id = group_id
        self.port = free_port()
        self.metrics_port = free_port()
        self.config = os.path.join(self.dir, "connect-distributed.properties")
        self.jvm = None
        self.starts = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def metrics_address(self):
        return "127.0.0.1:%d" % self.metrics_port

    def start(self, wait=True):
        os.makedirs(self.dir, exist_ok=True)
        props(self.config, {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group_id,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": self.group_id + "-configs",
            "offset.storage.topic": self.group_id + "-offsets",
            "status.storage.topic": self.group_id + "-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": 1,
            "status.storage.partitions": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": "http://127.0.0.1:%d" % self.port,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": self.port,
            # A worker that leaves gets its tasks reassigned after this delay.
            "scheduled.rebalance.max.delay.ms": 10000,
            "plugin.discovery": "only_scan",
        })
        self.starts += 1
        self.jvm = JavaProcess("worker%d" % self.index, self.dir,
                               ["-cp", self.cp,
                                "org.apache.kafka.connect.cli.ConnectDistributed",
                                self.config], heap="512m")
        self.jvm.start(jvm_opts=["-javaagent:%s=%s:%s" % (self.agent, self.metrics_address,
                                                          self.exporter_config)])
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        def ready():
            if not self.jvm.alive():
                raise AssertionError("Connect worker %d exited (rc=%s)\n%s"
                                     % (self.index, self.jvm.proc.returncode,
                                        self.jvm.tails()))
            st, body, _ = rest("GET", self.url + "/connectors", timeout=5)
            return st == 200 and isinstance(body, list)
        wait_until(ready, timeout, "Connect worker %d at %s" % (self.index, self.url),
                   on_timeout=self.jvm.tails)

    def kill(self):
        return self.jvm.kill(signal.SIGKILL) if self.jvm else None

    def close(self):
        if self.jvm:
            self.jvm.stop()


class StackPrometheus(PrometheusServer):
    """PrometheusServer on the shipped packaging/prometheus/prometheus.yml:
    its rule_files and job names are kept, the targets of the Connect job and
    the kcwatch job are this run's ports, intervals are shortened."""

    def __init__(self, tmpdir, connect_targets, kcwatch_target=None, scrape_interval="2s"):
        self.connect_targets = list(connect_targets)
        self.kcwatch_target = kcwatch_target
        super().__init__(tmpdir, targets=connect_targets, rule_files=[JMX_RULES],
                         job=CONNECT_JOB, scrape_interval=scrape_interval,
                         evaluation_interval=scrape_interval)

    def _write_config(self):
        cfg = shipped_prometheus_config(self.connect_targets, self.kcwatch_target,
                                        self.scrape_interval)
        with open(self.config_path, "w") as f:
            f.write(harness.to_yaml(cfg))


def shipped_prometheus_config(connect_targets, kcwatch_target, interval):
    if yaml is None:
        raise StackUnavailable("python3-yaml is missing: run packaging/install-deps.sh")
    with open(PROM_CONFIG) as f:
        cfg = yaml.safe_load(f)
    cfg.setdefault("global", {})
    cfg["global"]["scrape_interval"] = interval
    cfg["global"]["scrape_timeout"] = interval
    cfg["global"]["evaluation_interval"] = interval
    cfg["rule_files"] = [JMX_RULES]
    jobs = []
    for job in cfg["scrape_configs"]:
        # Only the targets change; the shipped static labels stay.
        static = (job.get("static_configs") or [{}])[0]
        if job["job_name"] == CONNECT_JOB:
            job["static_configs"] = [dict(static, targets=list(connect_targets))]
        elif job["job_name"] == KCWATCH_JOB:
            if not kcwatch_target:
                continue
            job["static_configs"] = [dict(static, targets=[kcwatch_target])]
        jobs.append(job)
    cfg["scrape_configs"] = jobs
    cfg.pop("alerting", None)
    return cfg


# ---------------------------------------------------------------- the stack

class Stack:
    def __init__(self, workers=1, spare_workers=0, exporter_config=EXPORTER_CONFIG, keep=False):
        """spare_workers: workers whose ports are chosen (and handed to kcwatch
        and Prometheus) but which start only when start_worker(i) says so."""
        self.tmp = tempfile.mkdtemp(prefix="kcw-stack-")
        self.n_workers = workers
        self.n_spare = spare_workers
        self.exporter_config = exporter_config
        self.keep = keep
        self.broker = None
        self.workers = []
        self.prom = None
        self.sink = None
        self.kcw = None
        self.kcw_proc = None
        self.kcw_log = os.path.join(self.tmp, "kcwatch.log")
        self.kcw_config = os.path.join(self.tmp, "kcwatch.yaml")
        self.kcw_listen = None
        self.cp = self.agent = None

    def start(self):
        self.cp, self.agent = resolve_jars(self.tmp)
        self.broker = Broker(self.tmp, self.cp).start()
        for i in range(self.n_workers + self.n_spare):
            self.add_worker(start=i < self.n_workers)
        for w in self.workers[:self.n_workers]:
            w.wait_ready()
        self.sink = WebhookSink().start()
        self.kcw_listen = "127.0.0.1:%d" % free_port()
        self.prom = StackPrometheus(self.tmp, [w.metrics_address for w in self.workers],
                                    self.kcw_listen).start(timeout=60)
        return self

    def add_worker(self, start=True, wait=False):
        w = Worker(self.tmp, len(self.workers), self.cp, self.agent, self.broker.bootstrap,
                   self.exporter_config)
        self.workers.append(w)
        if start:
            w.start(wait=wait)
        return w

    @property
    def url(self):
        return self.workers[0].url

    # -------------------------------------------------------- REST helpers

    def rest(self, method, path, body=None, worker=0, timeout=30.0):
        return rest(method, self.workers[worker].url + path, body, timeout)

    def create(self, name, config, worker=0):
        st, body, text = self.rest("POST", "/connectors", {"name": name, "config": config},
                                   worker=worker)
        if st != 201:
            raise AssertionError("creating connector %s answered %s: %s" % (name, st, text))
        return body

    def status(self, name, worker=0):
        st, body, _ = self.rest("GET", "/connectors/%s/status" % name, worker=worker)
        return body if st == 200 else None

    def task_state(self, name, task=0):
        s = self.status(name)
        for t in (s or {}).get("tasks", []):
            if t.get("id") == task:
                return t.get("state")
        return None

    def wait_task(self, name, state, task=0, timeout=60):
        return wait_until(lambda: self.task_state(name, task) == state, timeout,
                          "task %s/%d to be %s (status: %s)" % (name, task, state, "%s"),
                          on_timeout=lambda: json.dumps(self.status(name)))

    def delete(self, name):
        self.rest("DELETE", "/connectors/" + name)

    # -------------------------------------------------------- kcwatch

    def kcwatch_config(self, rule_files, overrides=None):
        cfg = {
            "global": {"evaluation_interval": "1s",
                       "state_dir": os.path.join(self.tmp, "kcwatch-state"),
                       "listen": self.kcw_listen,
                       "log": {"format": "logfmt", "level": "debug"}},
            "prometheus": {"url": self.prom.url, "timeout": "5s"},
            "connect": [{"name": "stack", "urls": [w.url for w in self.workers],
                         "poll_interval": "1s", "timeout": "5s"}],
            "remediation": {"enabled": True, "dry_run": False, "max_concurrent": 2,
                            "backoff": {"initial": "2s", "max": "10s", "multiplier": 2,
                                        "jitter": 0},
                            "budget": {"max_restarts": 10, "window": "1h"},
                            "stable_period": "5s", "verify_timeout": "5s"},
            "rule_files": list(rule_files),
            "receivers": [{"name": "hook", "webhook": {"url": self.sink.url + "/hook"}}],
            "route": {"receiver": "hook", "group_by": ["alertname", "cluster", "connector"],
                      "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        }
        return harness.deep_merge(cfg, overrides)

    def start_kcwatch(self, binary, rule_files, overrides=None):
        cfg = self.kcwatch_config(rule_files, overrides)
        with open(self.kcw_config, "w") as f:
            f.write(harness.to_yaml(cfg))
        log = open(self.kcw_log, "ab")
        try:
            self.kcw_proc = subprocess.Popen([os.path.abspath(binary), "run", "-c", self.kcw_config],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             cwd=self.tmp, start_new_session=True)
        finally:
            log.close()
        wait_until(lambda: http_json("http://%s/readyz" % self.kcw_listen, 1)[0] == 200,
                   30, "kcwatch to get ready", on_timeout=lambda: tail(self.kcw_log))
        return self.kcw_proc

    def kcwatch_log_records(self, **match):
        try:
            with open(self.kcw_log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            rec = harness.parse_logfmt(line)
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def stop_kcwatch(self):
        if self.kcw_proc is None:
            return None
        if self.kcw_proc.poll() is None:
            self.kcw_proc.send_signal(signal.SIGTERM)
            try:
                self.kcw_proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.kcw_proc.pid, signal.SIGKILL)
                self.kcw_proc.wait(5)
        rc = self.kcw_proc.returncode
        self.kcw_proc = None
        return rc

    # -------------------------------------------------------- teardown

    def logs(self, n=30):
        parts = [tail(self.kcw_log, n)]
        for w in self.workers:
            if w.jvm:
                parts.append(w.jvm.tails(n))
        if self.broker and self.broker.jvm:
            parts.append(self.broker.jvm.tails(n))
        return "\n".join(parts)

    def close(self):
        """Always runs: stops kcwatch, the workers, the broker and Prometheus
        by PID, in that order, then removes the temp dir."""
        try:
            self.stop_kcwatch()
        except Exception:
            pass
        for w in self.workers:
            w.close()
        if self.broker:
            self.broker.close()
        if self.prom:
            self.prom.stop()
            self.prom.close()
        if self.sink:
            self.sink.stop()
        harness.remove_tmp(self.tmp, self.keep)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- CLI

def main():
    ap = argparse.ArgumentParser(description="Run the real Kafka/Connect/JMX exporter/"
                                             "Prometheus/kcwatch stack on loopback")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start everything and wait for Ctrl-C / SIGTERM")
    up.add_argument("--kcwatch", help="kcwatch binary (default: build/kcwatch if built)")
    up.add_argument("--workers", type=int, default=1, help="Connect workers (default 1)")
    up.add_argument("--exporter-config", default=EXPORTER_CONFIG)
    up.add_argument("--keep", action="store_true", help="keep the temp dir at exit")
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    st = Stack(workers=args.workers, exporter_config=os.path.abspath(args.exporter_config),
               keep=args.keep)
    try:
        print("starting the stack in %s (first run downloads the jars)" % st.tmp, flush=True)
        st.start()
        binary = args.kcwatch or os.path.join(ROOT, "build", "kcwatch")
        if os.access(binary, os.X_OK):
            st.start_kcwatch(binary, [os.path.join(ROOT, "rules.d", "connect-status.yaml"),
                                      JMX_RULES])
        else:
            binary = None
        print(json.dumps({
            "kafka_bootstrap": st.broker.bootstrap,
            "connect_urls": [w.url for w in st.workers],
            "jmx_exporter": ["http://%s/metrics" % w.metrics_address for w in st.workers],
            "prometheus": st.prom.url,
            "webhook_sink": st.sink.url + "/hook",
            "kcwatch": ("http://%s" % st.kcw_listen) if binary else "not started "
                       "(build it: cmake -S . -B build && cmake --build build -j2)",
            "kcwatch_config": st.kcw_config if binary else None,
            "logs": st.tmp,
        }, indent=2), flush=True)
        print("stack is up; Ctrl-C (or kill -TERM %d) stops it" % os.getpid(), flush=True)
        seen = 0
        while not stop:
            got = st.sink.received()
            for r in got[seen:]:
                print("webhook: %r" % r, flush=True)
            seen = len(got)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the stack", flush=True)
        st.close()


if __name__ == "__main__":
    main()
