"""The config model of each source kind (``[sources.NAME]`` tables).

To add a source kind, write its model here and add it to ``SourceConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, StrictBool, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from engine.config.types import MODEL_CONFIG, AbsolutePath, Command, NonEmptyStr, Seconds


class _SourceBase(BaseModel):
    """What every source kind has."""

    model_config = MODEL_CONFIG
    drill: StrictBool = Field(False, examples=[True])
    """A DR drill may seed markers here, destroy this source's data and restore it (``lifeboat
    drill``); only sources flagged so are ever touched by a drill."""


class FilesSourceConfig(_SourceBase):
    """Files and directories copied from a host."""

    model_config = MODEL_CONFIG
    kind: Literal["files"] = "files"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table the files live on."""
    paths: tuple[AbsolutePath, ...] = Field(min_length=1, examples=[["/etc/prexorcloud"]])
    """Absolute paths to back up, each listed once."""
    allow_setid: StrictBool = Field(False, examples=[True])
    """Whether this source's archives may hold setuid or setgid files; off, ``backup verify``
    and the restore validator refuse an archive that does (a compromised host could plant a
    setuid-root program for the restore to install). Setgid directories are always allowed."""

    @field_validator("paths")
    @classmethod
    def _no_duplicates(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        first: dict[Path, int] = {}
        duplicates = [
            (i, str(p), first[p]) for i, p in enumerate(value) if first.setdefault(p, i) != i
        ]
        if duplicates:
            raise PydanticCustomError(
                "duplicate_path", "duplicate path", {"duplicates": duplicates}
            )
        return value


class CommandSourceConfig(_SourceBase):
    """The output of a command run on a host (a database dump, say)."""

    model_config = MODEL_CONFIG
    kind: Literal["command"] = "command"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table the command runs on."""
    backup: Command = Field(examples=[["pg_dump", "-Fc", "app"]])
    """Command (a list: program, then arguments) whose standard output is the backup."""
    restore: Command | None = Field(None, examples=[["pg_restore", "--clean", "-d", "app"]])
    """Command that reads a backup on standard input; without it the source cannot be restored."""


class EtcdSourceConfig(_SourceBase):
    """An etcd member's snapshot, taken through an SSH tunnel to the member's host."""

    model_config = MODEL_CONFIG
    kind: Literal["etcd"] = "etcd"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["cp1"])
    """Name of the ``[hosts.<name>]`` table the etcd member runs on."""
    endpoint: NonEmptyStr = Field("127.0.0.1:2379", examples=["127.0.0.1:2379"])
    """The member's client address as seen from that host (``HOST:PORT``)."""
    cacert: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/etcd-ca.pem"])
    """CA certificate (a local file) to verify a TLS endpoint."""
    cert: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/etcd-client.pem"])
    """Client certificate (a local file) for TLS client authentication."""
    key: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/etcd-client-key.pem"])
    """Client key (a local file) for TLS client authentication."""
    timeout: Seconds = Field(600.0, examples=[600])
    """Deadline in seconds for the snapshot (big databases need more)."""
    ca_file: AbsolutePath | None = Field(None, examples=["/etc/otherix/pki/ca.crt"])
    """The cluster CA certificate on the host; its sha256 is recorded at backup, and a restore
    refuses a target whose CA differs (etcd data and on-disk CA must agree)."""
    data_dir: AbsolutePath | None = Field(None, examples=["/var/lib/etcd"])
    """The member's data directory on the host; restores go beside it."""
    name: NonEmptyStr | None = Field(None, examples=["cp1"])
    """The member name for a restore (``--name``)."""
    initial_cluster: NonEmptyStr | None = Field(None, examples=["cp1=https://10.0.0.5:2380"])
    """``--initial-cluster`` for a restore."""
    initial_advertise_peer_urls: NonEmptyStr | None = Field(
        None, examples=["https://10.0.0.5:2380"]
    )
    """``--initial-advertise-peer-urls`` for a restore."""
    initial_cluster_token: NonEmptyStr | None = Field(None, examples=["etcd-cluster-1"])
    """``--initial-cluster-token`` for a restore."""
    stop: Command | None = Field(None, examples=[["systemctl", "stop", "etcd"]])
    """Command that stops the member, for ``restore --swap``."""
    start: Command | None = Field(None, examples=[["systemctl", "start", "etcd"]])
    """Command that starts the member, for ``restore --swap``."""

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be HOST:PORT, got {value!r}")
        return value


class MongoSourceConfig(_SourceBase):
    """MongoDB databases, dumped through an SSH tunnel (driver) or by a remote mongodump."""

    model_config = MODEL_CONFIG
    kind: Literal["mongo"] = "mongo"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table MongoDB is reached from."""
    uri: SecretStr = Field(examples=["mongodb://backup@127.0.0.1:27017/?authSource=admin"])
    """Connection string as seen from that host; a password in it is never shown or stored."""
    password_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/mongo.password"])
    """A local file holding the password, instead of putting it in ``uri``."""
    method: Literal["driver", "mongodump"] = Field("driver", examples=["driver"])
    """``driver``: pymongo through an SSH tunnel; ``mongodump``: the host's mongodump."""
    include: tuple[NonEmptyStr, ...] = Field((), examples=[["app.*"]])
    """Namespace globs to back up (``db.collection``); empty means every user database."""
    exclude: tuple[NonEmptyStr, ...] = Field((), examples=[["app.cache_*"]])
    """Namespace globs to leave out."""
    parallel: StrictInt = Field(4, gt=0, le=64, examples=[4])
    """Collections dumped at the same time (driver method)."""
    mongodump: Command = Field(("mongodump",), examples=[["/usr/bin/mongodump"]])
    """The host's mongodump command (``mongodump`` method)."""
    mongorestore: Command = Field(("mongorestore",), examples=[["/usr/bin/mongorestore"]])
    """The host's mongorestore command (``mongodump`` method's restore)."""

    @field_validator("uri")
    @classmethod
    def _mongodb_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                "must start with mongodb:// (the value is not shown: it may hold a password)"
            )
        return value


class RedisSourceConfig(_SourceBase):
    """A Redis or Valkey server's snapshot (RDB), taken by replication with the host's
    ``redis-cli --rdb``, so it never races the server's own saves."""

    model_config = MODEL_CONFIG
    kind: Literal["redis"] = "redis"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["cache1"])
    """Name of the ``[hosts.<name>]`` table the server is reached from."""
    address: NonEmptyStr = Field("127.0.0.1", examples=["127.0.0.1"])
    """The server's address as seen from that host."""
    port: StrictInt = Field(6379, gt=0, le=65535, examples=[6379])
    """The server's port."""
    password_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/redis.password"])
    """A local file holding the password (AUTH); it reaches redis-cli on the host through its
    standard input and environment, never a command line."""
    redis_cli: Command = Field(("redis-cli",), examples=[["/usr/bin/valkey-cli"]])
    """The host's redis-cli (or valkey-cli)."""
    rdb_path: AbsolutePath | None = Field(None, examples=["/var/lib/redis/dump.rdb"])
    """Where the server loads its snapshot from (its ``dir`` and ``dbfilename``); a restore
    puts the backup there while the server is stopped."""
    stop: Command | None = Field(None, examples=[["systemctl", "stop", "redis-server"]])
    """Command that stops the server, for a restore."""
    start: Command | None = Field(None, examples=[["systemctl", "start", "redis-server"]])
    """Command that starts the server, for a restore."""


PG_DATABASE = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$"  # no dot: it separates db.schema.table


class PostgresSourceConfig(_SourceBase):
    """PostgreSQL databases, each dumped by the host's ``pg_dump -Fc``, with the cluster's
    roles (``pg_dumpall --globals-only``)."""

    model_config = MODEL_CONFIG
    kind: Literal["postgres"] = "postgres"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table the server is reached from."""
    address: NonEmptyStr = Field("127.0.0.1", examples=["127.0.0.1"])
    """The server's address as seen from that host (or its socket directory)."""
    port: StrictInt = Field(5432, gt=0, le=65535, examples=[5432])
    """The server's port."""
    user: NonEmptyStr = Field("postgres", examples=["backup"])
    """The role pg_dump connects as (it must read every table dumped)."""
    databases: tuple[Annotated[str, Field(pattern=PG_DATABASE)], ...] = Field(
        min_length=1, examples=[["app", "billing"]]
    )
    """The databases to dump, each in a file of its own (letters, digits, ``_`` and ``-``)."""
    password_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/pg.password"])
    """A local file holding the password; it reaches pg_dump on the host through its standard
    input and environment, never a command line. Without it, the host's ``~/.pgpass`` or
    trust applies."""
    globals: StrictBool = Field(True, examples=[False])
    """Also dump the cluster's roles and tablespaces (``pg_dumpall --globals-only``); this
    needs a superuser."""
    bin_dir: AbsolutePath | None = Field(None, examples=["/usr/lib/postgresql/16/bin"])
    """Where the host's pg_dump, pg_restore and psql are (default: its PATH)."""

    @field_validator("databases")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed twice")
        return value


SourceConfig = (
    FilesSourceConfig
    | CommandSourceConfig
    | EtcdSourceConfig
    | MongoSourceConfig
    | RedisSourceConfig
    | PostgresSourceConfig
)
