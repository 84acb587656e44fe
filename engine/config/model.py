"""The configuration's models: one frozen pydantic model per TOML table (sources, schedules
and their field types live beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    model_validator,
)

from engine import paths
from engine.config.encryption import EncryptionConfig
from engine.config.messages import unknown_host
from engine.config.notify import MetricsConfig, NotifyChannelConfig
from engine.config.remotes import RemoteConfig, S3RemoteConfig, SftpRemoteConfig
from engine.config.schedules import (
    CatalogConfig,
    CoordinationConfig,
    RetentionConfig,
    ScheduleConfig,
)
from engine.config.sources import SourceConfig
from engine.config.types import MODEL_CONFIG, AbsolutePath, Duration, NonEmptyStr, Seconds

# one readable word or a few: it shares the header's one line with the title and the path
ENVIRONMENT_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9 ._-]*[A-Za-z0-9._-])?$"
ENVIRONMENT_MAX = 24  # characters


class RepositoryConfig(BaseModel):
    """Where backups are kept."""

    model_config = MODEL_CONFIG
    path: AbsolutePath = Field(examples=["/var/backups/lifeboat"])
    """The repository directory: absolute, ``~`` is expanded."""


class HostConfig(BaseModel):
    """A machine reached over SSH."""

    model_config = MODEL_CONFIG
    address: NonEmptyStr = Field(examples=["10.0.0.5"])
    """Host name or IP address."""
    port: StrictInt = Field(22, gt=0, le=65535, examples=[22])
    """SSH port."""
    user: NonEmptyStr = Field(default_factory=paths.login_name, examples=["backup"])
    """Login name on the host; defaults to the local login name."""
    identity: AbsolutePath | None = Field(None, examples=["~/.ssh/id_ed25519"])
    """Private key file; when absent, the SSH agent and default keys are used."""
    known_hosts: AbsolutePath = Field(
        default_factory=paths.default_known_hosts, examples=["~/.ssh/known_hosts"]
    )
    """known_hosts file used to verify the host key."""
    trust_on_first_use: StrictBool = Field(False, examples=[True])
    """Accept and record the host key on first connection (never a changed key)."""
    connect_timeout: Seconds = Field(10.0, examples=[10])
    """Seconds to wait for the connection and login."""
    keepalive_interval: Seconds = Field(15.0, examples=[15])
    """Seconds between SSH keepalives on an idle connection."""
    bulk_transport: Literal["auto", "openssh", "asyncssh"] = Field("auto", examples=["auto"])
    """Client for backup data: the system ``ssh`` (about 2x faster) when ``auto`` finds it."""


SOURCE_KINDS: dict[str, type[BaseModel]] = {
    model.model_fields["kind"].default: model for model in get_args(SourceConfig)
}


REMOTE_KINDS: dict[str, type[BaseModel]] = {"s3": S3RemoteConfig, "sftp": SftpRemoteConfig}


class TierConfig(BaseModel):
    """A group of sources with a recovery point and time objective (a "tier")."""

    model_config = MODEL_CONFIG
    rpo: Duration = Field(examples=["24h"])
    """Most data the tier may lose: a backup covering all its sources must be this fresh."""
    rto: Duration = Field(examples=["1h"])
    """Longest a restore of the tier may take (measured by drills)."""
    sources: tuple[NonEmptyStr, ...] = Field(min_length=1, examples=[["mongo", "config"]])
    """Names of the ``[sources]`` the tier covers."""
    offsite_rpo: Duration | None = Field(None, examples=["48h"])
    """How fresh the newest off-host copy (``[remotes]``) must be, when it differs from
    ``rpo``; judged only when remotes are configured."""


class RunbooksConfig(BaseModel):
    """Extra runbook files (restore decision trees) beside the built-in ones."""

    model_config = MODEL_CONFIG
    paths: tuple[AbsolutePath, ...] = Field((), examples=[["/etc/lifeboat/restore.toml"]])
    """Tree files; a tree with the name of a built-in one replaces it."""


class ChecklistsConfig(BaseModel):
    """Validation checklists: extra files, and the values the built-in ones name."""

    model_config = MODEL_CONFIG
    paths: tuple[AbsolutePath, ...] = Field((), examples=[["/etc/lifeboat/post-restore.toml"]])
    """Checklist files; one with the name of a built-in checklist replaces it."""
    values: dict[str, NonEmptyStr] = Field(
        default_factory=dict, examples=[{"controller": "ctl1", "mongo": "mongo"}]
    )
    """Values for the ``{name}`` placeholders in checklists (hosts, URLs, sources)."""


class RestoreConfig(BaseModel):
    """How the restore validator judges a target."""

    model_config = MODEL_CONFIG
    free_space_margin: float = Field(1.2, ge=1.0, le=1e12, allow_inf_nan=False, examples=[1.2])
    """A target needs this many times the restored size free on its disk."""


class TargetSourceConfig(BaseModel):
    """Where one source goes when restored to an alternate target."""

    model_config = MODEL_CONFIG
    host: NonEmptyStr | None = Field(None, examples=["staging1"])
    """The ``[hosts.<name>]`` to restore onto (default: the source's own host)."""
    uri: SecretStr | None = Field(None, examples=["mongodb://127.0.0.1:27017"])
    """mongo: the target server's URI, as seen from that host."""
    endpoint: NonEmptyStr | None = Field(None, examples=["127.0.0.1:2379"])
    """etcd: the target member's client address, as seen from that host."""
    data_dir: AbsolutePath | None = Field(None, examples=["/var/lib/etcd-staging"])
    """etcd: the data directory the restore goes beside."""
    directory: AbsolutePath | None = Field(None, examples=["/srv/restore"])
    """files: extract under this directory instead of the original paths."""
    address: NonEmptyStr | None = Field(None, examples=["127.0.0.1"])
    """redis, postgres: the target server's address, as seen from that host."""
    port: StrictInt | None = Field(None, gt=0, le=65535, examples=[5433])
    """redis, postgres: the target server's port."""


TARGET_FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    "uri": ("mongo",),
    "endpoint": ("etcd",),
    "data_dir": ("etcd",),
    "directory": ("files",),
    "address": ("redis", "postgres"),
    "port": ("redis", "postgres"),
}


class TargetConfig(BaseModel):
    """An alternate restore target (a staging cluster, a new cluster)."""

    model_config = MODEL_CONFIG
    description: str = Field("", examples=["the staging cluster"])
    """Shown when choosing the target."""
    sources: dict[str, TargetSourceConfig] = Field(min_length=1)
    """Per source name: where it goes. Sources not listed cannot be restored to this target."""
    drill: StrictBool = Field(False, examples=[True])
    """A DR drill may destroy and restore this target's data (``lifeboat drill --target``)."""


class DrillConfig(BaseModel):
    """How ``lifeboat drill`` proves a restore: markers, and the checklist it runs after."""

    model_config = MODEL_CONFIG
    markers: StrictInt = Field(100, gt=0, le=10_000, examples=[100])
    """Marker records seeded per Mongo database and etcd source (files: up to 10 per directory)."""
    checklist: NonEmptyStr | None = Field(None, examples=["post-restore"])
    """A checklist whose automatic items must pass after the drill's restore."""


class Config(BaseModel):
    """A whole Lifeboat configuration file.

    ``operator`` is who every manifest, lock, audit record and checklist sign-off names. It is
    resolved once, when the file is read (``engine.config.load``): ``$LIFEBOAT_OPERATOR`` when
    set, else ``operator`` in the file, else the local login name.
    """

    model_config = MODEL_CONFIG
    NOT_TOML_KEYS: ClassVar[frozenset[str]] = frozenset({"path"})
    operator: NonEmptyStr = Field(default_factory=paths.operator_name, examples=["alice"])
    """Who is recorded in manifests, locks, the audit log and sign-offs; ``$LIFEBOAT_OPERATOR``
    overrides it, and it defaults to the local login name (under sudo: who ran sudo)."""
    environment: str | None = Field(
        None, pattern=ENVIRONMENT_PATTERN, max_length=ENVIRONMENT_MAX, examples=["production"]
    )
    """A short label the console's header shows beside the config file (e.g. "production",
    "staging"), so an operator sees at a glance which installation they are on."""
    repository: RepositoryConfig
    """Where backups are kept."""
    hosts: dict[str, HostConfig] = Field(default_factory=dict)
    """Hosts by name."""
    sources: dict[str, Annotated[SourceConfig, Field(discriminator="kind")]] = Field(
        default_factory=dict
    )
    """Things to back up, by name."""
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    """Tiers by name, each with RPO/RTO targets and its sources."""
    runbooks: RunbooksConfig = RunbooksConfig()
    """Extra runbook files."""
    restore: RestoreConfig = RestoreConfig()
    """Restore validator settings."""
    checklists: ChecklistsConfig = ChecklistsConfig()
    """Validation checklists."""
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    """Alternate restore targets by name."""
    drill: DrillConfig = DrillConfig()
    """DR drill settings."""
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict)
    """Backups that run by themselves (``lifeboat scheduler run``), by name."""
    retention: RetentionConfig = RetentionConfig()
    """The prune policy for backups no schedule's own policy covers."""
    coordination: CoordinationConfig | None = None
    """etcd coordination between several Lifeboat instances."""
    catalog: CatalogConfig | None = None
    """A shared MongoDB catalog of backups, checklist runs and drills."""
    encryption: EncryptionConfig | None = None
    """Encrypt every new backup to age recipients (absent: backups are written in plaintext)."""
    remotes: dict[str, Annotated[RemoteConfig, Field(discriminator="kind")]] = Field(
        default_factory=dict
    )
    """Off-host places holding copies of the backups (S3 buckets, SFTP directories), by name."""
    notify: dict[str, NotifyChannelConfig] = Field(default_factory=dict)
    """Where alerts go (apprise URLs) and which, by channel name."""
    metrics: MetricsConfig = MetricsConfig()
    """Prometheus metrics the scheduler writes."""
    path: Path | None = None
    """The file this was loaded from (not a TOML key); None when parsed from a string."""

    @model_validator(mode="after")
    def _hosts_exist(self) -> Config:
        problems = [unknown_host(n, s.host, self.hosts) for n, s in self.sources.items()]
        problems += [
            unknown_host(n, r.host, self.hosts, table="remotes")
            for n, r in self.remotes.items()
            if isinstance(r, SftpRemoteConfig)
        ]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return self
