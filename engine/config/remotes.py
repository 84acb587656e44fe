"""The ``[remotes.NAME]`` tables: off-host places that hold copies of the repository's backups.

A remote holds the local repository's layout (``backups/<id>/<files>``, the manifest last).
Credentials never live here: an S3 remote takes them from the environment, an AWS profile or
a credentials file; an SFTP remote logs in as its ``[hosts]`` entry does.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool

from engine.config.schedules import RetentionConfig
from engine.config.types import MODEL_CONFIG, AbsolutePath, NonEmptyStr

# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens (what every S3-compatible
# server accepts, and DNS-valid, which virtual-host addressing needs).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ENDPOINT = re.compile(r"https?://[^\s/]+(/[^\s]*)?")


def _bucket(value: str) -> str:
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit)"
        )
    return value


def _endpoint(value: str) -> str:
    if not _ENDPOINT.fullmatch(value):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _prefix(value: str) -> str:
    parts = value.strip("/").split("/") if value.strip("/") else []
    if any(part in ("", ".", "..") for part in parts) or "\\" in value:
        raise ValueError(f"must be a plain key prefix like 'lifeboat/prod', got {value!r}")
    return "/".join(parts)


class _RemoteBase(BaseModel):
    model_config = MODEL_CONFIG
    retention: RetentionConfig | None = None
    """This remote's own prune policy, periods in UTC (default: copies are kept until removed
    by hand); ``lifeboat backup prune --remote NAME`` applies it."""
    prune_last_copy: StrictBool = Field(False, examples=[True])
    """Let the policy remove a copy even when it is the last copy of that backup anywhere
    (default: such a copy is kept, and the prune says why)."""


class S3RemoteConfig(_RemoteBase):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, B2)."""

    kind: Literal["s3"] = "s3"
    """Remote kind."""
    bucket: Annotated[str, AfterValidator(_bucket)] = Field(examples=["acme-backups"])
    """The bucket (it must exist)."""
    prefix: Annotated[str, AfterValidator(_prefix)] = Field("", examples=["lifeboat/prod"])
    """Key prefix inside the bucket; the repository's layout goes under it."""
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = Field(
        None, examples=["https://minio.internal:9000"]
    )
    """The server's URL (default: AWS S3 for ``region``)."""
    region: NonEmptyStr = Field("us-east-1", examples=["eu-central-1"])
    """The bucket's region."""
    path_style: StrictBool = Field(False, examples=[True])
    """Address the bucket in the path (``endpoint/bucket/key``), as MinIO and Ceph want."""
    storage_class: NonEmptyStr | None = Field(None, examples=["STANDARD_IA"])
    """Storage class of the objects written (default: the bucket's)."""
    profile: NonEmptyStr | None = Field(None, examples=["backups"])
    """AWS profile whose credentials to use (default: the environment, then ``default``)."""
    credentials_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/s3.credentials"])
    """An AWS credentials file (INI, like ``~/.aws/credentials``); keep it 0600."""
    ca_bundle: AbsolutePath | None = Field(None, examples=["/etc/ssl/internal-ca.pem"])
    """CA certificates to verify an ``https`` endpoint with (an internal CA's, as MinIO and
    Ceph often use; default: the system's). Certificates are always verified."""


class SftpRemoteConfig(_RemoteBase):
    """A directory on another machine, over SSH (SFTP), with the host key verified."""

    kind: Literal["sftp"] = "sftp"
    """Remote kind."""
    host: NonEmptyStr = Field(examples=["vault1"])
    """The ``[hosts.<name>]`` to copy to."""
    path: AbsolutePath = Field(examples=["/srv/lifeboat-copies"])
    """The directory on that host holding the copies (created when missing)."""


RemoteConfig = S3RemoteConfig | SftpRemoteConfig
