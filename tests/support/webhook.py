"""A real HTTP receiver on loopback for apprise's ``json://`` notifications: it records each
POST (its path and JSON body), or answers 500 while ``failing`` is set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.failing = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def titles(self) -> list[str]:
        return [str(body.get("title", "")) for _, body in self.received]


@contextmanager
def running_webhook() -> Iterator[Webhook]:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if hook.failing:
                self.send_response(500)
            else:
                hook.received.append((self.path, body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
