"""The demo sandbox: a self-contained Lifeboat world on this machine.

It holds SSH keys, a sample data tree, a repository and a config whose only host is an
in-process SSH server on 127.0.0.1 (a random port, so the config and known_hosts are
rewritten at every start). Everything a newcomer sees is real: real SSH, real commands,
real backups.

Its backups are encrypted (``[encryption]``) to an age identity it makes once and keeps in
``identity.txt`` beside them, so that the demo runs by itself: ``lifeboat demo`` hands it to
the console, and prints it for a second terminal as ``$LIFEBOAT_AGE_IDENTITY``.

The config's ``[checklists.values]`` point the built-in post-restore checklist at the
sandbox: the controller is the demo host, whose PATH starts with the sandbox's ``bin/`` (the
sample app's ``prexorctl``, ``engine.demo.app``), the readiness URL is the sample app's
endpoint the sandbox serves on 127.0.0.1, and the Mongo and etcd sources (with the Mongo
audit collection) are the demo's own when they run. Redis and PostgreSQL sources join them
when those servers are installed. After a restore, every automatic item
of that checklist that applies passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from engine import paths
from engine.crypto.age import Identity, parse_identities
from engine.crypto.identities import identity_file_text
from engine.demo.app import serve_readiness, write_prexorctl
from engine.demo.server import InProcessSSHServer, generate_keys, write_known_hosts
from engine.demo.services import DemoServices, demo_services
from engine.repo.atomic import atomic_create, atomic_write, make_private_dir
from engine.repo.content import Keyring
from engine.repo.manifest import iso_z, utc_now

DEMO_HOST = "demo"
AUDIT_NAMESPACE = "app.audit_log"  # seeded by engine.demo.services
DEMO_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nDEMO\n-----END CERTIFICATE-----\n"


@dataclass(frozen=True)
class Sandbox:
    root: Path
    config_path: Path
    data_dir: Path
    repository: Path
    server: InProcessSSHServer
    identity: Path  # the age identity its backups are encrypted to
    skipped: tuple[str, ...] = ()  # the databases it runs without, each with why

    def keyring(self) -> Keyring:
        """What opens the sandbox's (encrypted) backups."""
        return Keyring(tuple(parse_identities(self.identity.read_bytes())))


def default_root() -> Path:
    return paths.user_data_dir() / "demo"


def _demo_identity(path: Path) -> Identity:
    """The sandbox's age identity, made once (0600). The demo keeps it beside its repository
    so that it runs by itself; a real installation keeps it off the bastion (README)."""
    if not path.exists():
        atomic_create(path, identity_file_text(Identity.generate(), iso_z(utc_now())).encode())
    (identity,) = parse_identities(path.read_bytes())
    return identity


def _write_sample_data(data: Path) -> None:
    """A small application's files: configs, certificates, a database dump."""
    files = {
        "etc/app/app.toml": '[server]\nlisten = "0.0.0.0:8080"\nworkers = 8\n',
        "etc/app/modules.json": json.dumps({"modules": ["billing", "search", "audit"]}, indent=2),
        "var/lib/app/certs/ca.pem": DEMO_CERTIFICATE,
        "var/lib/app/state/groups.json": json.dumps(
            [{"id": i, "name": f"group-{i}", "nodes": i % 5 + 1} for i in range(200)], indent=1
        ),
    }
    for relative, text in files.items():
        path = data / relative
        if not path.exists():
            make_private_dir(path.parent)
            atomic_write(path, text.encode())
    make_private_dir(data / "logs")
    dump = data / "db" / "app.dump"
    if not dump.exists():
        make_private_dir(dump.parent)
        lines = (
            f"INSERT INTO events VALUES ({i}, 'event {i}', {i * 7 % 1000});\n"
            for i in range(50_000)
        )
        atomic_write(dump, "".join(lines).encode())


def _config_text(root: Path, port: int, keys_client: Path) -> str:
    data = root / "data"
    quote = json.dumps  # a TOML basic string is a JSON string for these paths
    return f"""# The demo sandbox's config, rewritten at every `lifeboat demo` start.
operator = {quote(paths.login_name())}
environment = "demo"

[repository]
path = {quote(str(root / "repository"))}

[hosts.{DEMO_HOST}]
address = "127.0.0.1"
port = {port}
user = {quote(paths.login_name())}
identity = {quote(str(keys_client))}
known_hosts = {quote(str(root / "known_hosts"))}

[sources.app-config]
kind = "files"
host = "{DEMO_HOST}"
drill = true
paths = [{quote(str(data / "etc" / "app"))}, {quote(str(data / "var" / "lib" / "app"))}]

[sources.app-db]
kind = "command"
host = "{DEMO_HOST}"
backup = ["cat", {quote(str(data / "db" / "app.dump"))}]
restore = ["dd", {quote("of=" + str(data / "db" / "app.dump"))}, "status=none"]

[sources.app-logs]
kind = "command"
host = "{DEMO_HOST}"
# A slow stream (about 2 s) so a backup in progress can be watched.
backup = ["sh", "-c", "for i in $(seq 20); do head -c 262144 /dev/urandom; sleep 0.1; done"]
restore = ["dd", {quote("of=" + str(data / "logs" / "app.log"))}, "status=none"]

[tiers.app-data]
rpo = "1h"
rto = "15m"
sources = ["app-db"]

[tiers.app-config]
rpo = "24h"
rto = "30m"
sources = ["app-config"]

[tiers.everything]
rpo = "7d"
rto = "1h"
sources = ["app-config", "app-db", "app-logs"]

# `lifeboat demo` runs a scheduler while the console is open (its log: scheduler.log).
[schedules.app-db]
cron = "*/5 * * * *"
scope = ["app-db"]
label = "every 5 minutes"

[schedules.nightly]
cron = "0 2 * * *"
timezone = "Europe/Berlin"
label = "nightly"

[retention]
keep_last = 5
keep_hourly = 24
keep_daily = 7
pin = ["pre-*", "first demo backup"]
"""


def _database_sources(services: DemoServices) -> str:
    """Sources (and a tier) for the databases the demo could start."""
    text, covered = "", []
    if services.etcd_port is not None:
        peer = f"http://127.0.0.1:{services.etcd_peer_port}"
        text += f"""
[sources.demo-etcd]
kind = "etcd"
host = "{DEMO_HOST}"
endpoint = "127.0.0.1:{services.etcd_port}"
data_dir = {json.dumps(str(services.etcd_data_dir))}
name = "demo"
initial_cluster = "demo={peer}"
initial_advertise_peer_urls = "{peer}"
drill = true
"""
        if services.etcd_service is not None:
            text += f"stop = {json.dumps(services.etcd_service.stop)}\n"
            text += f"start = {json.dumps(services.etcd_service.start)}\n"
        covered.append("demo-etcd")
    if services.mongo_port is not None:
        text += f"""
[sources.demo-mongo]
kind = "mongo"
host = "{DEMO_HOST}"
uri = "mongodb://127.0.0.1:{services.mongo_port}/"
drill = true
"""
        covered.append("demo-mongo")
    if (redis := services.redis) is not None:
        text += f"""
[sources.demo-redis]
kind = "redis"
host = "{DEMO_HOST}"
port = {redis.port}
password_file = {json.dumps(str(redis.password_file))}
rdb_path = {json.dumps(str(redis.rdb_path))}
stop = {json.dumps(redis.service.stop)}
start = {json.dumps(redis.service.start)}
drill = true
"""
        covered.append("demo-redis")
    if (postgres := services.postgres) is not None:
        text += f"""
[sources.demo-pg]
kind = "postgres"
host = "{DEMO_HOST}"
port = {postgres.port}
databases = ["shop"]
password_file = {json.dumps(str(postgres.password_file))}
bin_dir = {json.dumps(str(postgres.bin_dir))}
drill = true
"""
        covered.append("demo-pg")
    if covered:
        text += f'\n[tiers.databases]\nrpo = "1h"\nrto = "30m"\nsources = {json.dumps(covered)}\n'
    return text


def _checklist_values(services: DemoServices, ready_url: str) -> dict[str, str]:
    """``[checklists.values]`` for the built-in post-restore checklist, in the sandbox."""
    values = {"controller": DEMO_HOST, "ready_url": ready_url}
    if services.mongo_port is not None:
        values |= {"mongo": "demo-mongo", "audit_namespace": AUDIT_NAMESPACE}
    if services.etcd_port is not None:
        values["etcd"] = "demo-etcd"
    return values


def _drill_checklist(root: Path, services: DemoServices, values: dict[str, str]) -> str:
    """The checklist the demo's drill runs after its restore, and the config that names it
    (with the built-in checklist's ``values``)."""
    app_toml = root / "data" / "etc" / "app" / "app.toml"
    items = f"""
[[items]]
id = "app-config"
kind = "command"
title = "The app's config is back"
host = "{DEMO_HOST}"
argv = ["cat", {json.dumps(str(app_toml))}]
stdout = "listen"
"""
    if services.mongo_port is not None:
        items += """
[[items]]
id = "mongo-counts"
kind = "mongo_count"
title = "Every app collection has as many documents as the backup"
source = "demo-mongo"
namespace = "app.*"
"""
    if services.etcd_port is not None:
        items += """
[[items]]
id = "etcd-keys"
kind = "etcd_keys"
title = "etcd holds as many keys as the backup"
source = "demo-etcd"
"""
    if services.redis is not None:
        items += """
[[items]]
id = "redis-keys"
kind = "redis_keys"
title = "Redis holds the backup's keys (less any that expired)"
source = "demo-redis"
"""
    if services.postgres is not None:
        items += """
[[items]]
id = "pg-orders"
kind = "pg_count"
title = "Every order is back"
source = "demo-pg"
database = "shop"
table = "orders"
"""
    path = root / "drill-checklist.toml"
    text = 'name = "demo-drill"\ntitle = "After the demo drill: is it all back?"\n' + items
    atomic_write(path, text.encode())
    filled = "".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items())
    return (
        f"\n[checklists]\npaths = [{json.dumps(str(path))}]\n"
        "\n# The built-in post-restore checklist, pointed at the sandbox.\n"
        f"[checklists.values]\n{filled}"
        '\n[drill]\nmarkers = 100\nchecklist = "demo-drill"\n'
    )


@asynccontextmanager
async def open_sandbox(
    root: Path | None = None, *, with_databases: bool = True
) -> AsyncIterator[Sandbox]:
    """Prepare the sandbox under ``root`` and serve its SSH host while the context is open;
    ``with_databases`` also starts etcd and a Mongo wire server when they are installed."""
    root = (root or default_root()).expanduser().absolute()
    make_private_dir(root)
    keys = generate_keys(root / "keys")
    _write_sample_data(root / "data")
    write_prexorctl(root / "bin", root / "data")
    server = InProcessSSHServer(keys, authorized_user=paths.login_name(), path=[root / "bin"])
    await server.start("127.0.0.1", 0)
    try:
        async with AsyncExitStack() as stack:
            ready_url = stack.enter_context(serve_readiness(root / "data"))
            services = DemoServices()
            if with_databases:
                services = await stack.enter_async_context(demo_services(root / "services"))
            write_known_hosts(root / "known_hosts", "127.0.0.1", server.port, keys.host_public_key)
            config_path = root / "lifeboat.toml"
            values = _checklist_values(services, ready_url)
            identity = _demo_identity(root / "identity.txt")
            text = (
                _config_text(root, server.port, keys.client_key)
                + _database_sources(services)
                + _drill_checklist(root, services, values)
                + f'\n[encryption]\nrecipients = ["{identity.recipient}"]\n'
            )
            atomic_write(config_path, text.encode())
            os.chmod(config_path, 0o600)
            yield Sandbox(
                root,
                config_path,
                root / "data",
                root / "repository",
                server,
                root / "identity.txt",
                services.skipped,
            )
    finally:
        await server.close()
