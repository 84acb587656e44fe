"""Config models for running by itself: schedules, retention, coordination and the catalog."""

from __future__ import annotations

import re
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StrictBool, StrictInt

from engine.config.types import MODEL_CONFIG, Duration, NonEmptyStr, Seconds
from engine.schedule.cron import Cron, parse_cron, zone_named

_ENDPOINT = re.compile(r"\[?[A-Za-z0-9.:_-]+\]?:\d{1,5}")


def _cron(value: str) -> str:
    return parse_cron(value).expression


def _zone(value: str) -> str:
    zone_named(value)
    return value


def _endpoint(value: str) -> str:
    if not _ENDPOINT.fullmatch(value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    return value


Count = Annotated[StrictInt, Field(gt=0)]


class RetentionConfig(BaseModel):
    """Which backups a prune keeps. Rules OR together: a backup any rule keeps stays."""

    model_config = MODEL_CONFIG
    keep_last: Count | None = Field(None, examples=[3])
    """Keep the N newest backups."""
    keep_hourly: Count | None = Field(None, examples=[24])
    """Keep the newest backup of each of the N latest hours that have backups."""
    keep_daily: Count | None = Field(None, examples=[7])
    """Keep the newest backup of each of the N latest days that have backups."""
    keep_weekly: Count | None = Field(None, examples=[4])
    """Keep the newest backup of each of the N latest ISO weeks that have backups."""
    keep_monthly: Count | None = Field(None, examples=[12])
    """Keep the newest backup of each of the N latest months that have backups."""
    keep_within: Duration | None = Field(None, examples=["2d"])
    """Keep every backup made within this long of the newest one."""
    pin: tuple[NonEmptyStr, ...] = Field((), examples=[["pre-*"]])
    """Label globs: a backup whose label matches one is kept until it is unpinned."""

    @property
    def has_rules(self) -> bool:
        """Whether any keep_* rule is set (pins alone never remove anything)."""
        rules = (self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly)
        return any(r is not None for r in (*rules, self.keep_monthly, self.keep_within))


class ScheduleConfig(BaseModel):
    """A backup that runs by itself on a cron schedule."""

    model_config = MODEL_CONFIG
    cron: Annotated[NonEmptyStr, AfterValidator(_cron)] = Field(examples=["0 2 * * *"])
    """Five fields, six with seconds first (``0 0 0 * * *``), or @hourly/@daily/@weekly."""
    scope: tuple[NonEmptyStr, ...] = Field((), examples=[["mongo", "config"]])
    """Sources to back up; empty means every source."""
    label: NonEmptyStr | None = Field(None, examples=["nightly"])
    """Label given to each backup."""
    timezone: Annotated[NonEmptyStr, AfterValidator(_zone)] = Field(
        "UTC", examples=["Europe/Berlin"]
    )
    """IANA time zone the cron fields are read in."""
    enabled: StrictBool = Field(True, examples=[False])
    """A disabled schedule never fires and is never overdue."""
    overdue_after: Duration | None = Field(None, examples=["30m"])
    """How late a run may be before status calls it overdue (default: one interval, at most
    1h)."""
    retention: RetentionConfig | None = None
    """This schedule's own prune policy, for its backups (default: the global [retention])."""
    copy_to: tuple[NonEmptyStr, ...] = Field((), examples=[["offsite", "vault"]])
    """``[remotes]`` each successful backup is copied to, in order; a failed copy is logged as
    an error and never fails the backup."""

    @property
    def parsed(self) -> Cron:
        return Cron(self.cron)

    @property
    def zone(self) -> ZoneInfo:
        return zone_named(self.timezone)


class CoordinationConfig(BaseModel):
    """etcd shared by several Lifeboat instances: each scheduled run once, one restore per
    target."""

    model_config = MODEL_CONFIG
    etcd: Annotated[NonEmptyStr, AfterValidator(_endpoint)] = Field(examples=["127.0.0.1:2379"])
    """The etcd client address (as seen from ``host`` when one is set)."""
    host: NonEmptyStr | None = Field(None, examples=["ctl1"])
    """Reach etcd through an SSH tunnel to this ``[hosts.<name>]``."""
    lease_ttl: Seconds = Field(10.0, ge=2, examples=[10])
    """Seconds a lock outlives its holder if the holder dies."""
    instance: NonEmptyStr | None = Field(None, examples=["scheduler-a"])
    """Name shown for this instance's locks (default: host name and pid)."""


class CatalogConfig(BaseModel):
    """A MongoDB index of manifests, checklist runs and drills, shared by every console."""

    model_config = MODEL_CONFIG
    mongo_uri: SecretStr = Field(examples=["mongodb://catalog.example:27017"])
    """The catalog server (credentials here are never logged)."""
    database: NonEmptyStr = Field("lifeboat", examples=["lifeboat"])
    """Database holding the catalog's collections."""
    timeout: Seconds = Field(5.0, examples=[5])
    """Seconds to wait for the catalog server before carrying on without it."""
