"""The ``[encryption]`` table: the age recipients every new backup is encrypted to.

Only public keys live in the config (and on the bastion); the identity that opens a backup is
given at restore time (``--identity``), never stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from engine.config.types import MODEL_CONFIG, AbsolutePath, listed_lines
from engine.crypto.age import AgeKeyError, Recipient

MAX_RECIPIENTS_FILE = 1024 * 1024  # far beyond any list of public keys


def _recipient(text: str) -> str:
    if text.strip().upper().startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "is a secret identity, not a recipient: the config holds public keys only; "
            "`age-keygen -y IDENTITY_FILE` prints the identity's recipient (age1...)"
        )
    try:
        Recipient.parse(text)
    except AgeKeyError as exc:
        raise ValueError(f"{exc}; `lifeboat key generate` prints one") from None
    return text.strip()


def read_recipients_file(path: Path) -> tuple[Recipient, ...]:
    """The recipients of a file of ``age1...`` lines (``#`` comments and blank lines skipped),
    as ``age -R`` reads it; ValueError says which line is wrong."""
    recipients = []
    for number, line in listed_lines(path, MAX_RECIPIENTS_FILE, "recipients"):
        try:
            recipients.append(Recipient.parse(line))
        except AgeKeyError as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
    if not recipients:
        raise ValueError(f"{path} holds no age1... recipient")
    return tuple(recipients)


class EncryptionConfig(BaseModel):
    """Encryption at rest: each backup file is encrypted (age v1) to these public keys."""

    model_config = MODEL_CONFIG
    recipients: tuple[Annotated[str, AfterValidator(_recipient)], ...] = Field(
        (), examples=[["age13g56yvqatxq0xvcc7dygjy9zd8y9wflqs9xeqhgf88ln4mftufxqdd5qj3"]]
    )
    """age public keys (``age1...``); any one of their identities opens a backup."""
    recipients_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/recipients.txt"])
    """A file of ``age1...`` lines (``#`` comments allowed), read when the config is loaded."""

    @model_validator(mode="after")
    def _some_recipient(self) -> EncryptionConfig:
        if not self.recipients and self.recipients_file is None:
            raise ValueError(
                'names no recipient: set recipients = ["age1..."] or recipients_file, or '
                "remove [encryption] to keep backups unencrypted"
            )
        return self

    @field_validator("recipients_file")
    @classmethod
    def _readable_file(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_recipients_file(path)
        return path

    def all_recipients(self) -> tuple[Recipient, ...]:
        """Every recipient, from the list and the file, each once (in the order given)."""
        found = [Recipient.parse(text) for text in self.recipients]
        if self.recipients_file is not None:
            found += read_recipients_file(self.recipients_file)
        return tuple(dict.fromkeys(found))
