"""A mongo source's config and what a Mongo server holds, for the backup and restore tests."""

from __future__ import annotations

import json
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from helpers import config_text
from mongo_server import MongoServer
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config

RAW = CodecOptions(document_class=RawBSONDocument)


def documents(server: MongoServer, namespace: str) -> dict[object, bytes]:
    db, coll = namespace.split(".", 1)
    with server.client() as client:
        collection = client[db].get_collection(coll, codec_options=RAW)
        return {doc["_id"]: bytes(doc.raw) for doc in collection.find()}


def mongo_config(
    ssh_server: SSHTestServer, tmp_path: Path, mongo: MongoServer, **extra: object
) -> Config:
    lines = [
        "[sources.mongo]",
        'kind = "mongo"',
        'host = "h1"',
        f'uri = "mongodb://127.0.0.1:{mongo.port}/"',
        *(f"{key} = {json.dumps(value)}" for key, value in extra.items()),
    ]
    return parse_config(config_text(ssh_server, tmp_path / "repo", "\n".join(lines) + "\n"))
