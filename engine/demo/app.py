"""The demo's sample application, as far as the built-in post-restore checklist looks at it.

The sample app in the sandbox is modelled on the system the built-in checklist was written
for: its controller answers a readiness endpoint, and ``prexorctl`` lists its status, groups,
modules and nodes. The demo serves both from the sandbox's own data files, so that the
checklist's automatic items check something real after a restore:

- ``serve_readiness``: a tiny HTTP server on 127.0.0.1 (a random port) answering
  ``GET /api/v1/system/ready`` with 200 and a small JSON body while the app's state file reads;
- ``write_prexorctl``: a ``prexorctl`` script in the sandbox's ``bin/`` (put first on the
  demo host's PATH) reading ``etc/app/modules.json`` and ``var/lib/app/state/groups.json``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.repo.atomic import atomic_write, make_private_dir

READY_PATH = "/api/v1/system/ready"
GROUPS_FILE = Path("var/lib/app/state/groups.json")
MODULES_FILE = Path("etc/app/modules.json")

_PREXORCTL = '''#!{python}
"""prexorctl of the Lifeboat demo: the sample app's state, read from the sandbox's files."""
import json
import sys
from pathlib import Path

DATA = Path({data!r})
USAGE = "usage: prexorctl status | group list | module list | node list"


def load(relative):
    path = DATA / relative
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"prexorctl: cannot read {{path}}: {{exc}}")


def main(args):
    groups = load({groups!r})
    modules = load({modules!r})["modules"]
    nodes = [f"node-{{i}}" for i in range(1, max((g["nodes"] for g in groups), default=0) + 1)]
    if args == ["status"]:
        print("controllers: 1/1 READY (demo)")
        print(f"nodes:       {{len(nodes)}}/{{len(nodes)}} READY")
        print(f"groups:      {{len(groups)}}")
        print(f"modules:     {{len(modules)}}/{{len(modules)}} ACTIVE")
    elif args == ["group", "list"]:
        print(f"{{'NAME':<12}} NODES")
        for group in groups:
            print(f"{{group['name']:<12}} {{group['nodes']}}")
    elif args == ["module", "list"]:
        print(f"{{'NAME':<12}} STATUS")
        for module in modules:
            print(f"{{module:<12}} ACTIVE")
    elif args == ["node", "list"]:
        print(f"{{'NAME':<12}} STATUS")
        for node in nodes:
            print(f"{{node:<12}} READY")
    else:
        sys.exit(USAGE)


main(sys.argv[1:])
'''


def write_prexorctl(bin_dir: Path, data: Path) -> Path:
    """Write the demo's ``prexorctl`` into ``bin_dir`` (rewritten at every start: it names
    this Python and the sandbox's data directory); its path."""
    make_private_dir(bin_dir)
    path = bin_dir / "prexorctl"
    text = _PREXORCTL.format(
        python=sys.executable, data=str(data), groups=str(GROUPS_FILE), modules=str(MODULES_FILE)
    )
    atomic_write(path, text.encode())
    path.chmod(0o700)
    return path


class _ReadyHandler(BaseHTTPRequestHandler):
    server: _ReadyServer

    def do_GET(self) -> None:
        if self.path != READY_PATH:
            self._reply(404, {"error": f"no such endpoint; try {READY_PATH}"})
            return
        try:
            groups = json.loads((self.server.data / GROUPS_FILE).read_text())
        except (OSError, ValueError) as exc:
            self._reply(503, {"status": "not ready", "reason": f"app state unreadable: {exc}"})
            return
        self._reply(200, {"status": "ready", "controllers": 1, "groups": len(groups)})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass  # the console owns the terminal


class _ReadyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: Path) -> None:
        super().__init__(("127.0.0.1", 0), _ReadyHandler)
        self.data = data


@contextmanager
def serve_readiness(data: Path) -> Iterator[str]:
    """Serve the app's readiness endpoint on 127.0.0.1 in a thread while open; its URL."""
    server = _ReadyServer(data)
    thread = threading.Thread(target=server.serve_forever, name="demo-ready", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{READY_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
