"""A plain-HTTP fault-injecting reverse proxy for tests: a STAC API that fails on page 2.

It forwards every request to an upstream HTTP server (the sandbox's rustac STAC API) and
rewrites the upstream's own URL in response bodies to the proxy's, so that `next` links (which
rustac builds from its listening address) come back through the proxy. A request is a "page
N" request when its POSTed JSON body (or GET query) carries `skip`/`token`: `faults` maps a
page number to the statuses to answer, in order, before forwarding succeeds, e.g.
`{2: [429, 503]}` answers the first page-2 request 429 (with Retry-After), the second 503,
and forwards the third. `hang_s` makes chosen pages sleep before answering (a read timeout).

    with HTTPFaultProxy("http://127.0.0.1:11010", faults={2: [429, 503]}) as proxy:
        discover(..., api_url=proxy.url)
        proxy.log  # [(method, path, page, status), ...]
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class HTTPFaultProxy:
    def __init__(
        self,
        upstream: str,
        faults: dict[int, list[int]] | None = None,
        hang_s: dict[int, float] | None = None,
        page_size_hint: int | None = None,
    ):
        self.upstream = upstream.rstrip("/")
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.hang_s = dict(hang_s or {})
        self.page_size_hint = page_size_hint
        self.log: list[tuple[str, str, int, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _page(self, method: str, path: str, body: bytes) -> int:
        """1 for a first page (or anything else), N for a request with skip/token."""
        params: dict = {}
        if method == "POST" and body:
            try:
                params = json.loads(body)
            except ValueError:
                params = {}
        else:
            params = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        skip = params.get("skip") or params.get("token")
        if not skip:
            return 1
        limit = int(params.get("limit") or self.page_size_hint or 10)
        try:
            return int(str(skip).split(":")[-1]) // max(limit, 1) + 1
        except ValueError:
            return 2

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        page = self._page(handler.command, handler.path, body)
        with self._lock:
            planned = self.faults.get(page) or []
            status = planned.pop(0) if planned else 0
        if page in self.hang_s:
            time.sleep(self.hang_s[page])
        if status:
            payload = json.dumps({"code": status, "description": "injected fault"}).encode()
            handler.send_response(status)
            if status == 429:
                handler.send_header("Retry-After", "1")
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload)
            self.log.append((handler.command, handler.path, page, status))
            return
        req = urllib.request.Request(
            self.upstream + handler.path,
            data=body or None,
            method=handler.command,
            headers={k: v for k, v in handler.headers.items() if k.lower() not in ("host",)},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                code, headers, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            code, headers, data = err.code, err.headers, err.read()
        data = data.replace(self.upstream.encode(), self.url.encode())
        handler.send_response(code)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)
        self.log.append((handler.command, handler.path, page, code))

    def start(self) -> HTTPFaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy._handle(self)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args) -> None:  # quiet: the test reads proxy.log
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="httpfaultproxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HTTPFaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
