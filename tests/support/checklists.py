"""Checklist files and an HTTP server for the checklists' automatic items."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def item(kind: str, item_id: str, **fields: object) -> str:
    """One ``[[items]]`` table; its title is ``Check <id>``."""
    lines = ["[[items]]", f'id = "{item_id}"', f'kind = "{kind}"', f'title = "Check {item_id}"']
    lines += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def write_checklist(directory: Path, name: str, *items: str, title: str = "") -> Path:
    path = directory / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ntitle = "{title or name + " checks"}"\n\n' + "\n".join(items)
    )
    return path


def checklists_toml(paths: list[Path], values: dict[str, str] | None = None) -> str:
    text = f"[checklists]\npaths = {toml_value([str(p) for p in paths])}\n"
    if values:
        text += "[checklists.values]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in values.items()
        )
    return text


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = PAGES.get(self.path, (404, b"no such page"))
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 and a random port: its base URL and the paths it served."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


PAGES = {
    "/ready": (200, b"lifeboat-ready: all 3 controllers healthy"),
    "/broken": (503, b"upstream unavailable"),
}
