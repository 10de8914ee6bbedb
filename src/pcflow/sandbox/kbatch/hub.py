"""A minimal JupyterHub API for kbatch-proxy's token check: `GET /hub/api/user`.

kbatch-proxy authenticates every request by asking the hub who owns the bearer token
(jupyterhub.services.auth.HubAuth.user_for_token). This answers that one question for a fixed
set of tokens, from a thread of the kbatch process, on an ephemeral loopback port. HubAuth
calls it synchronously from kbatch-proxy's event loop, so it must not share that loop.
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    """Serve `/hub/api/user` for `tokens` (token -> user name) on 127.0.0.1."""

    def __init__(self, tokens: dict[str, str], scopes: list[str]) -> None:
        self.tokens = dict(tokens)
        self.scopes = list(scopes)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path.split("?")[0].rstrip("/") != "/hub/api/user":
                    self._reply(404, {"status": 404, "message": "Not Found"})
                    return
                user = hub.user_for(self.headers.get("Authorization", ""))
                if user is None:
                    self._reply(403, {"status": 403, "message": "invalid token"})
                    return
                self._reply(200, {"kind": "user", "name": user, "groups": [], "scopes": hub.scopes})

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # request lines could carry nothing secret, but keep the log quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hub/api"

    def user_for(self, header: str) -> str | None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in {"token", "bearer"} or not token:
            return None
        for known, user in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                return user
        return None

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
