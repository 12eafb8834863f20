"""httpbody.py: request bodies for the fakes' HTTP handlers (http.server
reads neither chunked bodies nor Content-Length by itself)."""


def read_body(handler, limit=16 * 1024 * 1024):
    """Request body by Content-Length or chunked transfer coding."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        out = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
            if len(out) > limit:
                raise ValueError("body too large")
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""
