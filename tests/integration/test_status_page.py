#!/usr/bin/env python3
"""The status page at / in a real browser.

The fake Connect holds a task that fails with a trace a restart cannot fix
(orders/1: held, "unfixable"), one that a restart heals (payments/0: the
restart and its recovery are in the audit log), one that fails again after
every restart until the budget of one is spent (flaky/0: held, "budget
spent"), and a connector named `<script>` whose failed task's trace carries
markup. Headless Chromium (Debian `chromium`) loads the page: its DOM must
name each of them in the right section, show `<script>` as text (no script
element anywhere), and a screenshot is taken. The page must also be served
with the security headers, read-only, and under the admin server's Host
check. Without chromium this test fails: packaging/install-deps.sh installs
it.

STATUS_PAGE_SCREENSHOT=PATH keeps a copy of the screenshot (docs/)."""

import html.parser
import http.client
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402
from test_unrecoverable import CONFIG_TRACE  # noqa: E402

MARKUP_TRACE = (
    "org.apache.kafka.common.config.ConfigException: bad value <img src=x onerror=alert(1)>"
    " </details><script>alert(2)</script>\n"
    "\tat org.apache.kafka.common.config.ConfigDef.parseType(ConfigDef.java:744)\n")
SCRIPT_NAME = "<script>"
WINDOW = (1280, 2200)

OVERRIDES = {
    "remediation": {"budget": {"max_restarts": 1, "window": "1h"},
                    "backoff": {"initial": "300ms", "max": "1s", "multiplier": 2, "jitter": 0}},
}


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed: the status page test needs headless "
                         "Chromium (Debian package `chromium`; packaging/install-deps.sh "
                         "installs it)")


def chromium(args, url, tmp, timeout):
    """Runs headless Chromium with a fresh profile; returns its stdout."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
           "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", "--hide-scrollbars"] + args + [url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        harness.kill_group(proc)
        raise AssertionError("chromium did not finish within %ss: %s" % (timeout, " ".join(cmd)))
    finally:
        if proc.poll() is None:
            harness.kill_group(proc)
    if proc.returncode != 0:
        raise AssertionError("chromium exited %s: %s" % (proc.returncode,
                                                         err.decode("utf-8", "replace")[-2000:]))
    return out.decode("utf-8", "replace")


class VisibleText(html.parser.HTMLParser):
    """Text a reader sees, per <section id>: not <head>, <script> or
    <style>, and of a closed <details> only its <summary>."""

    VOID = {"meta", "link", "br", "img", "input", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []        # open elements: (tag, attrs)
        self.sections = {}     # id -> text
        self.all = []
        self.tags = []         # every start tag seen

    def hidden(self):
        closed_details = False
        for tag, attrs in self.stack:
            if tag in ("head", "script", "style", "template"):
                return True
            if tag == "details":
                closed_details = "open" not in attrs
            elif tag == "summary":
                closed_details = False
        return closed_details

    def section(self):
        for tag, attrs in reversed(self.stack):
            if tag == "section":
                return attrs.get("id")
        return None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self.hidden():
            return
        self.all.append(data)
        sid = self.section()
        if sid:
            self.sections[sid] = self.sections.get(sid, "") + data + " "


def visible(dom):
    p = VisibleText()
    p.feed(dom)
    p.close()
    norm = {k: " ".join(v.split()) for k, v in p.sections.items()}
    return p, norm, " ".join(" ".join(p.all).split())


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError("%s is not a PNG" % path)
    return struct.unpack(">II", head[16:24])


def fetch(h, path, method="GET", host=None):
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    try:
        headers = {"Host": host} if host else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_status_page_in_chromium():
    with Harness("status-page", workers=2) as h:
        h.fake.add_connector("orders", tasks=2)
        h.fake.add_connector("payments", tasks=1)
        h.fake.add_connector("flaky", tasks=1)
        h.fake.add_connector(SCRIPT_NAME, tasks=1)
        h.start_daemon(OVERRIDES)
        h.port = int(h.config["global"]["listen"].rsplit(":", 1)[1])
        h.fake.set_restart_outcome("flaky", "fail_again", trace="new")
        h.fake.fail_task("orders", 1, CONFIG_TRACE)
        h.fake.fail_task("payments", 0, harness.TASK_FAILED_TRACE)
        h.fake.fail_task("flaky", 0, harness.TASK_FAILED_TRACE)
        h.fake.fail_task(SCRIPT_NAME, 0, MARKUP_TRACE)

        h.wait_for(lambda: h.fake.restarts("payments"), what="the restart of payments")
        h.wait_for(lambda: h.fake.task_state("payments", 0) == "RUNNING",
                   what="payments/0 RUNNING again")
        h.wait_for(lambda: h.log_records(msg="restart recovered", connector="payments"),
                   what="the restart of payments judged recovered")
        h.wait_alert("KcwatchRestartBudgetExhausted", "firing", {"connector": "flaky"},
                     timeout=30)
        h.wait_for(lambda: h.log_records(msg="restart skipped: unrecoverable failure",
                                         connector="orders", task="1"),
                   what="orders/1 held as unrecoverable")

        url = "http://127.0.0.1:%d/" % h.port

        # The page as served: what it names, and how.
        def page_shows_all():
            status, headers, body = fetch(h, "/")
            text = body.decode("utf-8")
            need = ["orders", "payments", "flaky", "unfixable", "budget spent", "recovered"]
            return (status, headers, text) if all(n in text for n in need) else None
        status, headers, text = h.wait_for(page_shows_all, what="the page to show every case")
        h.check(status == 200, "GET / answered %s" % status)
        h.check(headers.get("content-type") == "text/html; charset=utf-8",
                "content type: %r" % headers.get("content-type"))
        h.check(headers.get("content-security-policy") == "default-src 'self'",
                "CSP header: %r" % headers.get("content-security-policy"))
        h.check(headers.get("x-content-type-options") == "nosniff",
                "nosniff header: %r" % headers.get("x-content-type-options"))
        h.check("&lt;script&gt;" in text, "the connector named <script> is not escaped")
        h.check("<script" not in text.lower(), "the page carries a script element")
        h.check("<img" not in text.lower(), "the trace's <img> became markup")
        h.check("style=" not in text and "<style" not in text,
                "inline style would be blocked by the CSP")

        status, headers, css = fetch(h, "/static/kcwatch.css")
        h.check(status == 200 and headers.get("content-type", "").startswith("text/css"),
                "stylesheet: %s %r" % (status, headers.get("content-type")))
        h.check(b".badge" in css, "stylesheet body: %r" % css[:80])

        # Read-only; HEAD is fine; the Host check applies as for any endpoint.
        status, headers, body = fetch(h, "/", "HEAD")
        h.check(status == 200 and body == b"", "HEAD /: %s %r" % (status, body[:40]))
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = fetch(h, "/", method)
            h.check(status == 405, "%s / answered %s, expected 405" % (method, status))
            h.check("GET" in headers.get("allow", ""), "Allow: %r" % headers.get("allow"))
        status, _, _ = fetch(h, "/", host="rebind.example.com")
        h.check(status == 421, "a foreign Host header got %s, expected 421" % status)

        # Pages past the end are empty, not an error.
        with urllib.request.urlopen(url + "?page=99&alerts=99", timeout=10) as r:
            far = r.read().decode("utf-8")
        h.check("No rows on this page" in far, "page 99 should say it is empty")

        # In the browser.
        timeout = max(60, harness.DEFAULT_TIMEOUT * 3)
        dom = chromium(["--dump-dom", "--virtual-time-budget=2000"], url, h.tmp, timeout)
        parser, sections, alltext = visible(dom)
        h.check("script" not in parser.tags,
                "the browser built a script element: tags %r" % sorted(set(parser.tags)))
        h.check("img" not in parser.tags, "the browser built an img element")
        broken = sections.get("broken", "")
        h.check("orders task 1" in broken and "FAILED" in broken,
                "the failed task orders/1 is not visible under 'not RUNNING': %r" % broken[:600])
        h.check("ConfigException: Invalid value abc" in broken,
                "orders/1's first trace line is not visible: %r" % broken[:600])
        h.check("ConfigDef.parseType" not in broken,
                "the trace beyond its first line shows without opening it")
        h.check(SCRIPT_NAME + " task 0" in broken,
                "the connector named <script> does not show as text: %r" % broken[:600])
        h.check("<script>alert(2)</script>" in broken,
                "the trace's markup should read as text: %r" % broken[:900])
        restarts = sections.get("restarts", "")
        h.check("payments task 0" in restarts or "payments" in restarts,
                "the restart of payments is not listed: %r" % restarts[:600])
        h.check("sent" in restarts and "recovered" in restarts,
                "the restart's sending and recovery are not listed: %r" % restarts[:600])
        held = sections.get("held", "")
        h.check("orders task 1" in held and "unfixable" in held and "ConfigException" in held,
                "the held restart of orders/1 and its reason are not visible: %r" % held[:600])
        h.check("flaky task 0" in held or "flaky" in held,
                "flaky (budget spent) is not among the held restarts: %r" % held[:600])
        budgets = sections.get("budgets", "")
        h.check("flaky" in budgets and "1 of 1" in budgets,
                "flaky's spent budget is not listed: %r" % budgets[:400])
        alerts = sections.get("alerts", "")
        h.check("ConnectTaskFailed" in alerts and "firing" in alerts,
                "the firing alerts are not listed: %r" % alerts[:400])
        h.check("KcwatchRestartBudgetExhausted" in alerts, "the budget alert is not listed")
        h.check("storms" in sections and "none" in sections["storms"],
                "the storm section should say none: %r" % sections.get("storms"))
        self_ = sections.get("self", "")
        h.check("last reload" in self_ and "connect-status" in self_,
                "kcwatch's own health is missing: %r" % self_[:400])
        h.check("c1" in sections.get("clusters", "") and "3.8.0" in sections.get("clusters", ""),
                "the cluster with its version is missing: %r" % sections.get("clusters"))

        shot = os.path.join(h.tmp, "status-page.png")
        chromium(["--screenshot=" + shot, "--window-size=%d,%d" % WINDOW,
                  "--virtual-time-budget=2000"], url, h.tmp, timeout)
        h.check(os.path.exists(shot), "no screenshot written")
        h.check(png_size(shot) == WINDOW, "screenshot is %r, expected %r"
                % (png_size(shot), WINDOW))
        # A blank page of this size compresses to a few KB; the rendered one
        # has text and colour all over it.
        h.check(os.path.getsize(shot) > 40000, "the screenshot looks blank (%d bytes)"
                % os.path.getsize(shot))
        keep = os.environ.get("STATUS_PAGE_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)

        # A rejected reload shows as such, with the configuration still running.
        with open(h.config_path, "a") as f:
            f.write("no_such_key: 1\n")
        os.kill(h.proc.pid, signal.SIGHUP)

        def rejected():
            _, _, body = fetch(h, "/")
            _, sections, _ = visible(body.decode("utf-8"))
            own = sections.get("self", "")
            return own if "was rejected" in own and "needs attention" in body.decode() else None
        own = h.wait_for(rejected, what="the page to show the rejected reload")
        h.check("running on the configuration loaded" in own, own[:400])
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
