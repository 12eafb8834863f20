#!/usr/bin/env python3
"""The protected admin API, with the real daemon.

admin.token_file: every write route (reload, silences) needs the bearer token
(401 without), reads stay open; a browser's cross-site write is refused 403
even with the token; a refused reload over HTTP answers 400 with every error
at FILE:LINE:COL; a new token takes effect on reload. admin.tls +
admin.basic_auth: HTTPS only (a self-signed certificate made here with
openssl), every request needs the credentials. No secret reaches the log."""

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

TOKEN = "tok-9f1c2e7d51"
PASSWORD = "pw-Zq81LmX0"


def call(h, method, path, body=None, headers=None, scheme="http", ctx=None):
    url = "%s://%s%s" % (scheme, h.config["global"]["listen"], path)
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=dict({"Content-Type": "application/json"},
                                              **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def bearer(tok=TOKEN):
    return {"Authorization": "Bearer " + tok}


def test_token_cross_site_and_reload_errors():
    with Harness("admin-token", workers=1) as h:
        h.write("admin.token", TOKEN + "\n")
        h.start_daemon({"admin": {"token_file": "admin.token"}})

        st, hdr, _ = call(h, "POST", "/-/reload")
        h.check(st == 401 and hdr.get("WWW-Authenticate", "").startswith("Bearer"), (st, hdr))
        h.check(call(h, "POST", "/-/reload", headers=bearer("nope"))[0] == 401, "wrong token")
        st, _, body = call(h, "POST", "/api/v2/silences", {"matchers": []})
        h.check(st == 401, "silence POST without token: %s %r" % (st, body))
        h.check(call(h, "DELETE", "/api/v2/silence/x")[0] == 401, "silence DELETE")
        h.check(call(h, "DELETE", "/api/v2/silences?id=x")[0] == 401, "silences DELETE")
        h.check(call(h, "GET", "/api/v1/alerts")[0] == 200, "reads stay open")
        h.check(call(h, "GET", "/api/v2/silences")[0] == 200, "reads stay open")
        st, _, body = call(h, "POST", "/-/reload", headers=bearer())
        h.check(st == 200, "reload with the token: %s %r" % (st, body))

        # A browser's cross-site write: refused even with the token.
        host = h.config["global"]["listen"]
        for extra in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                      {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
            st, _, body = call(h, "POST", "/-/reload", headers=dict(bearer(), **extra))
            h.check(st == 403 and json.loads(body)["errorType"] == "forbidden",
                    "%r: %s %r" % (extra, st, body))
        for extra in ({"Origin": "http://" + host}, {"Sec-Fetch-Site": "same-origin"}):
            st, _, _ = call(h, "POST", "/-/reload", headers=dict(bearer(), **extra))
            h.check(st == 200, "same-origin %r: %s" % (extra, st))
        # Reads from another site are not refused (they change nothing).
        h.check(call(h, "GET", "/api/v1/alerts", headers={"Sec-Fetch-Site": "cross-site"})[0]
                == 200, "cross-site read")

        # A refused reload answers 400 with the positioned errors.
        with open(h.config_path) as f:
            good = f.read()
        with open(h.rules_path) as f:
            good_rules = f.read()
        with open(h.config_path, "w") as f:
            f.write(good + "bogus_section: 1\n")
        with open(h.rules_path, "w") as f:
            f.write(good_rules.replace("alert:", "alertt:", 1))
        st, hdr, body = call(h, "POST", "/-/reload", headers=bearer())
        doc = json.loads(body)
        h.check(st == 400 and doc["status"] == "error" and doc["errorType"] == "bad_data", doc)
        errs = doc["errors"]
        h.check(any(e.get("file") == h.config_path and e.get("line") == good.count("\n") + 1
                    and e.get("column") == 1 and "bogus_section" in e["message"]
                    and e["text"].startswith("%s:%d:1: " % (h.config_path, good.count("\n") + 1))
                    for e in errs), "config error not positioned: %r" % errs)
        # The config error stops the load before the rules are read; fix it
        # and the rule file's error comes back positioned too.
        with open(h.config_path, "w") as f:
            f.write(good)
        st, _, body = call(h, "POST", "/-/reload", headers=bearer())
        errs = json.loads(body).get("errors", [])
        h.check(st == 400 and any(e.get("file") == h.rules_path and e.get("line", 0) > 0
                                  and "alertt" in e["message"] for e in errs),
                "rule error not positioned: %s %r" % (st, errs))
        with open(h.rules_path, "w") as f:
            f.write(good_rules)

        # A new token takes effect on reload; the old one stops working.
        h.write("admin.token", "second-" + TOKEN)
        h.check(call(h, "POST", "/-/reload", headers=bearer())[0] == 200, "reload")
        h.check(call(h, "POST", "/-/reload", headers=bearer())[0] == 401, "old token still valid")
        h.check(call(h, "POST", "/-/reload", headers=bearer("second-" + TOKEN))[0] == 200,
                "new token refused")
        h.check(TOKEN not in h.log_text(), "the token reached the log")
        h.finish()


def make_cert(h):
    cert, key = os.path.join(h.tmp, "cert.pem"), os.path.join(h.tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def basic(user="ops", pw=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}


def test_tls_and_basic_auth():
    with Harness("admin-tls", workers=1) as h:
        cert, key = make_cert(h)
        h.write("admin.password", PASSWORD + "\n")
        h.start_daemon({"admin": {"tls": {"cert_file": cert, "key_file": key},
                                  "basic_auth": {"username": "ops",
                                                 "password_file": "admin.password"}}})
        ctx = ssl.create_default_context(cafile=cert)
        https = dict(scheme="https", ctx=ctx)

        def up():
            try:
                return call(h, "GET", "/healthz", headers=basic(), **https)[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False
        h.wait_for(up, what="HTTPS /healthz with basic auth")
        st, hdr, _ = call(h, "GET", "/healthz", **https)
        h.check(st == 401 and hdr.get("WWW-Authenticate", "").startswith("Basic"), (st, hdr))
        h.check(call(h, "GET", "/metrics", headers=basic(pw="wrong"), **https)[0] == 401,
                "wrong password")
        h.check(call(h, "GET", "/metrics", headers=basic(user="x"), **https)[0] == 401,
                "wrong user")
        h.check(call(h, "GET", "/api/v1/alerts", headers=basic(), **https)[0] == 200, "read")
        h.check(call(h, "POST", "/-/reload", **https)[0] == 401, "write without credentials")
        h.check(call(h, "POST", "/-/reload", headers=basic(), **https)[0] == 200, "write")

        # Plain HTTP gets no answer from the HTTPS port.
        plain_ok = True
        try:
            st = call(h, "GET", "/healthz", headers=basic())[0]
        except (urllib.error.URLError, ConnectionError, OSError,
                __import__("http.client").client.HTTPException):
            plain_ok = False
        h.check(not plain_ok, "plain HTTP answered %s" % (plain_ok and st))
        # The certificate is the one configured.
        host, port = h.config["global"]["listen"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                h.check(tls.getpeercert()["subject"][0][0] == ("commonName", "localhost"),
                        "served certificate")
        h.check(PASSWORD not in h.log_text(), "the password reached the log")
        rc = subprocess.run([harness.kcwatch_bin(), "check", "-c", h.config_path],
                            capture_output=True, text=True, timeout=30)
        h.check(rc.returncode == 0, "check: %s" % rc.stderr)
        h.check(PASSWORD not in rc.stdout + rc.stderr, "check printed the password")
        h.finish()


def test_config_errors():
    with Harness("admin-conf", workers=1) as h:
        h.write_config({"admin": {"listen": "127.0.0.1:1", "token": "",
                                  "tls": {"cert_file": "missing.pem"},
                                  "basic_auth": {"username": "ops"}}})
        rc = subprocess.run([harness.kcwatch_bin(), "check", "-c", h.config_path],
                            capture_output=True, text=True, timeout=30)
        out = rc.stderr + rc.stdout
        h.check(rc.returncode == 1, "check accepted: %s" % out)
        for needle in ("admin.listen: global.listen (line", "admin: the token is empty",
                       "admin.tls.cert_file: cannot read", "admin.tls: cert_file and key_file",
                       "admin.basic_auth: password or password_file is required"):
            h.check(needle in out, "%r missing from: %s" % (needle, out))
        lines = out.strip().splitlines()
        h.check(lines[-1] == "5 errors" and
                all(line.startswith(h.config_path + ":") for line in lines[:-1]),
                "every error is positioned: %s" % out)


if __name__ == "__main__":
    harness.run_tests(globals())
