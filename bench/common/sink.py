"""sink.py: the benchmarks' alert receiver.

Answers 200 to every POST and counts what came: webhook payloads (kcwatch,
{"alerts": [...]}) and Alertmanager API v2 lists (vmalert, [...]). names
holds the distinct label sets seen firing, arrivals the time of each POST."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        try:
            doc = json.loads(body)
            alerts = doc.get("alerts", []) if isinstance(doc, dict) else doc
            with self.server.lock:
                self.server.posts += 1
                self.server.arrivals.append(time.monotonic())
                self.server.alerts += len(alerts)
                for a in alerts:
                    # Webhook payloads say "status"; Alertmanager's API v2 (vmalert) does not.
                    if a.get("status", "firing") == "firing":
                        self.server.names.add(json.dumps(a.get("labels", {}), sort_keys=True))
        except ValueError:
            pass
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start_sink():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.posts = srv.alerts = 0
    srv.names = set()
    srv.arrivals = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
