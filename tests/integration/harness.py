"""harness.py: runs the real kcwatch daemon against the fakes.

A Harness owns one test's world: a FakeConnectCluster, a WebhookSink, a temp
dir with kcwatch.yaml and a rule file, and the daemon process started as
`$KCWATCH_BIN run -c CONFIG` in its own process group with stderr captured to
a file. wait_for() polls a predicate until a deadline and, on timeout, raises
with the daemon's log tail. finish() checks the daemon is still alive, that
neither the fakes nor the sink saw anything wrong, and that SIGTERM makes it
exit 0 within 5 s. close() (always run) kills whatever is left by PID.

run_tests(globals()) is the tiny runner every test file ends with: it runs
each test_* function in definition order and prints "N passed, M failed".

Environment: KCWATCH_BIN (the daemon binary, required for daemon tests),
KCWATCH_SOURCE_DIR (repo root, for rules.d), KCWATCH_TEST_TIMEOUT (default
deadline in seconds, 20: ASan builds are slower; tests finish as soon as
their conditions hold).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))

from fake_connect import FakeConnectCluster  # noqa: E402
from webhook_sink import WebhookSink  # noqa: E402

DEFAULT_TIMEOUT = float(os.environ.get("KCWATCH_TEST_TIMEOUT") or 20)
SOURCE_DIR = os.environ.get("KCWATCH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))

TASK_FAILED_TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Exiting WorkerSinkTask due to "
    "unrecoverable exception.\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliverMessages"
    "(WorkerSinkTask.java:632)\n"
    "Caused by: java.io.IOException: broken pipe\n"
    "\tat com.example.fake.FakeSinkTask.put(FakeSinkTask.java:88)\n")


class MissingBinary(Exception):
    pass


def kcwatch_bin():
    """Path of the daemon binary, or raises MissingBinary with why."""
    b = os.environ.get("KCWATCH_BIN")
    if not b:
        raise MissingBinary("KCWATCH_BIN is not set: it must name the kcwatch binary "
                            "(ctest sets it to the built target)")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise MissingBinary("KCWATCH_BIN=%s is not an executable file (not built yet?)" % b)
    return b


# ---------------------------------------------------------------- YAML out

_PLAIN = re.compile(r"^[A-Za-z0-9_/.$][A-Za-z0-9_./@%+*$-]*$")
_SPECIAL = re.compile(r"^(true|false|yes|no|on|off|null|~|[-+]?[0-9][0-9_.eE+-]*)$", re.I)


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    # Durations like 200ms stay plain; anything YAML could read as another
    # type, or with special characters, is double-quoted (JSON escapes are
    # valid YAML double-quoted escapes).
    if _PLAIN.match(s) and not _SPECIAL.match(s):
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = yaml_scalar(k)
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 1)))
            else:
                lines.append("%s%s: %s\n" % (pad, key, "{}" if v == {} else "[]" if v == []
                                             else yaml_scalar(v)))
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 1)
                lines.append("%s- %s" % (pad, inner.lstrip(" ")))
            else:
                lines.append("%s- %s\n" % (pad, yaml_scalar(v)))
        return "".join(lines)
    return pad + yaml_scalar(obj) + "\n"


def deep_merge(base, over):
    """base updated by over, recursively for dicts; None in over deletes."""
    out = dict(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- logfmt in

_LOGFMT_PAIR = re.compile(r'\s*([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    """{key: value} of one logfmt line (quoted values unescaped); {} if none."""
    out = {}
    pos = 0
    while pos < len(line):
        m = _LOGFMT_PAIR.match(line, pos)
        if not m:
            break
        k, v = m.group(1), m.group(2)
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r'\\(.)', lambda mm: {"n": "\n", "t": "\t"}.get(mm.group(1),
                                                                       mm.group(1)), v[1:-1])
        out[k] = v
        pos = m.end()
    return out


def free_port():
    """A port free right now on loopback (for listeners we cannot hand port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_binary(env, default, package):
    """Path of a peer's binary ($env, else default), or raises
    FileNotFoundError saying which Debian package provides it."""
    b = os.environ.get(env) or default
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise FileNotFoundError(
            "%s is not an executable file: install Debian's `%s` package "
            "(packaging/install-deps.sh does) or set %s" % (b, package, env))
    return b


def kill_group(proc, wait=5):
    """SIGKILLs proc's process group (peers run with start_new_session) and
    reaps it; a group already gone is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        pass


def remove_tmp(path, keep=False):
    """Removes a test's temp dir, unless keep or $KCWATCH_KEEP_TMP says to
    keep it (then prints where it is)."""
    if keep or os.environ.get("KCWATCH_KEEP_TMP"):
        print("  kept %s" % path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def wait_until(pred, timeout, what, on_timeout=None, interval=0.02):
    """pred()'s first truthy value, polling every `interval` s; after
    `timeout` s raises AssertionError naming `what` (plus on_timeout()'s
    text, e.g. log tails)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError("timed out after %.1fs waiting for %s%s"
                                 % (timeout, what, ("\n" + extra) if extra else ""))
        time.sleep(interval)


# ---------------------------------------------------------------- rules

def connect_rule(alert, target="task", state="FAILED", restart=None, for_="0s", labels=None,
                 annotations=None, **cond):
    r = {"alert": alert, "connect": dict({"target": target, "state": state}, **cond),
         "for": for_}
    if restart is not None:
        r["restart"] = restart
    r["labels"] = dict(labels or {"severity": "warning"})
    if annotations is None:
        if target == "task":
            annotations = {"summary": "Task {{ $labels.connector }}/{{ $labels.task }} failed",
                           "description": "{{ $trace }}"}
        elif target == "connector":
            annotations = {"summary": "Connector {{ $labels.connector }} is {{ $labels.state }}"}
        else:
            annotations = {"summary": "Connect cluster {{ $labels.cluster }} unreachable"}
    r["annotations"] = annotations
    return r


def default_rules():
    return [
        connect_rule("ConnectTaskFailed", "task", "FAILED", restart=True),
        connect_rule("ConnectConnectorFailed", "connector", "FAILED", restart=True),
        connect_rule("ConnectClusterUnreachable", "cluster", "UNREACHABLE",
                     labels={"severity": "critical"}),
    ]


# ---------------------------------------------------------------- harness

class Harness:
    def __init__(self, name="kcwatch", workers=2, version="3.8.0", fake_kwargs=None,
                 start_fakes=True):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="kcw-it-%s-" % name)
        self.log_path = os.path.join(self.tmp, "kcwatch.log")
        self.out_path = os.path.join(self.tmp, "kcwatch.stdout")
        self.config_path = os.path.join(self.tmp, "kcwatch.yaml")
        self.rules_path = os.path.join(self.tmp, "rules.yaml")
        self.proc = None
        self.fake = None
        self.sink = None
        self._log_files = []
        if start_fakes:
            kw = {"restart_process_delay": 0.1, "restarting_delay": 0.4}
            kw.update(fake_kwargs or {})
            self.fake = FakeConnectCluster(workers=workers, version=version, **kw).start()
            self.sink = WebhookSink().start()

    # -------------------------------------------------------- files

    def base_config(self):
        return {
            "global": {"evaluation_interval": "1s",
                       "state_dir": os.path.join(self.tmp, "state"),
                       "listen": "127.0.0.1:%d" % free_port(),
                       "log": {"format": "logfmt", "level": "debug"}},
            "connect": [{"name": "c1", "urls": list(self.fake.urls),
                         "poll_interval": "200ms", "timeout": "2s"}],
            "remediation": {"enabled": True, "dry_run": False, "max_concurrent": 2,
                            "backoff": {"initial": "300ms", "max": "5s", "multiplier": 2,
                                        "jitter": 0},
                            "budget": {"max_restarts": 3, "window": "1h"},
                            "stable_period": "2s", "verify_timeout": "3s",
                            # notifications as soon as routes allow; the
                            # heal_wait tests set it themselves
                            "heal_wait": "0s",
                            "exclude": {"connector": "legacy-.*"}},
            "rule_files": [self.rules_path],
            "receivers": [{"name": "hook", "webhook": {"url": self.sink.url + "/hook"}}],
            "route": {"receiver": "hook", "group_by": ["alertname", "cluster", "connector"],
                      "group_wait": "0s", "group_interval": "500ms",
                      "repeat_interval": "1h"},
        }

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def write_config(self, overrides=None, rules=None):
        cfg = deep_merge(self.base_config(), overrides)
        rules = default_rules() if rules is None else rules
        with open(self.rules_path, "w") as f:
            f.write(to_yaml({"groups": [{"name": "connect-status", "rules": rules}]}))
        with open(self.config_path, "w") as f:
            f.write(to_yaml(cfg))
        self.config = cfg
        return self.config_path

    # -------------------------------------------------------- daemon

    def start_daemon(self, overrides=None, rules=None, wait_polls=2, args=()):
        """Writes config + rules, starts the daemon (`run -c CONFIG` plus
        args), waits until it polled the fake `wait_polls` times (it has seen
        the healthy cluster)."""
        binary = kcwatch_bin()
        self.write_config(overrides, rules)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        err = open(self.log_path, "wb")
        out = open(self.out_path, "wb")
        self._log_files += [err, out]
        self.started_at = time.monotonic()
        cmd = [binary, "run", "-c", self.config_path] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, cwd=self.tmp, env=env,
                                     start_new_session=True)
        if wait_polls:
            self.wait_for(lambda: self.fake.poll_count() >= wait_polls,
                          what="the daemon to poll GET /connectors %d times" % wait_polls)
        return self.proc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def log_tail(self, n=60):
        lines = self.log_lines()
        out = "\n".join(lines[-n:])
        try:
            with open(self.out_path, "rb") as f:
                so = f.read().decode("utf-8", "replace").strip()
            if so:
                out += "\n--- stdout ---\n" + "\n".join(so.splitlines()[-20:])
        except FileNotFoundError:
            pass
        return out

    def log_records(self, start_line=0, **match):
        """Parsed logfmt lines (from line index start_line) whose keys equal match."""
        out = []
        for line in self.log_lines()[start_line:]:
            rec = parse_logfmt(line)
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def wait_for(self, pred, timeout=None, what="condition", interval=0.03):
        """Polls pred() every `interval` s until truthy (returned) or the
        deadline; raises AssertionError with the daemon log tail otherwise,
        or at once if the daemon died."""
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("daemon exited (rc=%s) while waiting for %s\n"
                                     "--- daemon log tail ---\n%s"
                                     % (self.proc.returncode, what, self.log_tail()))
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s\n"
                                     "--- daemon log tail ---\n%s"
                                     % (timeout, what, self.log_tail()))
            time.sleep(interval)

    def wait_polls(self, n, what=None):
        """Lets the daemon poll n more times (the fake's GET count is the clock)."""
        target = self.fake.poll_count() + n
        self.wait_for(lambda: self.fake.poll_count() >= target,
                      what=what or "%d more polls" % n)

    def check(self, cond, msg):
        if not cond:
            raise AssertionError("%s\n--- daemon log tail ---\n%s" % (msg, self.log_tail()))

    def sanitizer_reports(self):
        text = self.log_text()
        return [l for l in text.splitlines()
                if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l
                or "runtime error:" in l]

    def finish(self):
        """End-of-test checks: daemon alive, fakes clean, SIGTERM -> exit 0 in 5 s."""
        if self.proc is not None:
            self.check(self.alive(), "daemon is not running at the end of the test (rc=%s)"
                       % self.proc.returncode)
        if self.sink is not None:
            v = self.sink.violations
            self.check(not v, "webhook payload violations:\n  " + "\n  ".join(v))
        if self.fake is not None:
            self.check(not self.fake.errors, "fake Connect internal errors: %r"
                       % self.fake.errors)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(5)
            except subprocess.TimeoutExpired:
                raise AssertionError("daemon did not exit within 5 s of SIGTERM\n%s"
                                     % self.log_tail())
            self.check(rc == 0, "daemon exited %s on SIGTERM, expected 0" % rc)
            reports = self.sanitizer_reports()
            self.check(not reports, "sanitizer reports:\n" + "\n".join(reports))

    def close(self):
        """Always runs: kill the daemon's process group, stop the fakes, remove tmp."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        elif self.proc is not None:
            # The daemon is gone; make sure nothing it spawned lingers.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in self._log_files:
            f.close()
        if self.fake is not None:
            self.fake.stop()
        if self.sink is not None:
            self.sink.stop()
        remove_tmp(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------- helpers

    def wait_alert(self, alertname, status="firing", labels=None, pred=None, after=None,
                   timeout=None, what=None):
        """First (delivery, alert) matching; waits for it."""
        def find():
            hits = self.sink.find_alerts(alertname=alertname, status=status, labels=labels,
                                         pred=pred, after=after)
            return hits[0] if hits else None

        return self.wait_for(find, timeout=timeout,
                             what=what or "a %s webhook for %s %r" % (status, alertname,
                                                                      labels or {}))

    def restart_statuses(self, connector=None):
        return [r.status for r in self.fake.restarts(connector)]


def run_tests(namespace, needs_daemon=True):
    """Runs every test_* function of a test module; exits 0 only if all passed."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    name = os.path.basename(namespace.get("__file__", "tests"))
    if needs_daemon:
        try:
            kcwatch_bin()
        except MissingBinary as e:
            print("%s: cannot run: %s" % (name, e))
            for n, _ in tests:
                print("FAIL %s (no daemon binary)" % n)
            print("0 passed, %d failed" % len(tests))
            sys.exit(1)
    passed = failed = 0
    for n, f in tests:
        t0 = time.monotonic()
        try:
            f()
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (n, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("PASS %s (%.2fs)" % (n, time.monotonic() - t0))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)
