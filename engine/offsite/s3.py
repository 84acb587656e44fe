"""A remote in an S3-compatible bucket, through aiobotocore (asyncio).

Large files go up as multipart uploads of ``PART`` bytes, ``CONCURRENCY`` parts at a time
(memory stays near their product), each part with its SHA-256, which the server keeps: the
object's checksum it reports (base64 of the SHA-256 of the part digests, S3's "composite"
checksum) must equal the one computed here from what was sent, or the upload does not count.
The file's own sha256 rides along as metadata, so a later copy can tell a whole file from a
partial one without reading it back. Credentials come from botocore's chain (environment,
``profile``, ``credentials_file``), never from the config.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.session import AioSession
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from engine.config.remotes import S3RemoteConfig
from engine.offsite.remote import Remote, RemoteBackup, RemoteError, backup_key, is_backup_id

PART = 8 * 1024 * 1024
CONCURRENCY = 4
READ_BLOCK = 1024 * 1024
SHA256_META = "sha256"  # x-amz-meta-sha256: the whole file's sha256, as the manifest records it
NOT_THERE = {"404", "NoSuchKey", "NotFound"}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class S3Remote(Remote):
    chunk_size = PART  # a chunk of this size becomes a part without being copied

    def __init__(self, name: str, config: S3RemoteConfig) -> None:
        super().__init__(name)
        self.config = config
        self._stack = AsyncExitStack()
        self._client: Any = None

    @property
    def where(self) -> str:
        prefix = f"/{self.config.prefix}" if self.config.prefix else ""
        return f"s3://{self.config.bucket}{prefix}"

    def _key(self, key: str) -> str:
        return f"{self.config.prefix}/{key}" if self.config.prefix else key

    async def connect(self) -> None:
        session = AioSession(profile=self.config.profile)
        if self.config.credentials_file is not None:
            session.set_config_variable("credentials_file", str(self.config.credentials_file))
        client_config = BotoConfig(
            region_name=self.config.region,
            s3={
                "addressing_style": "path" if self.config.path_style else "auto",
                # Each part's SHA-256 travels in a signed header the server checks: signing the
                # body as well would hash every part again, on the event loop.
                "payload_signing_enabled": False,
            },
            max_pool_connections=CONCURRENCY * 2,
            retries={"max_attempts": 3, "mode": "standard"},
            # Only the SHA-256 checksums asked for: older Ceph and MinIO refuse botocore's
            # default CRC32 trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self._client = await self._stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=self.config.endpoint,
                    config=client_config,
                    verify=str(self.config.ca_bundle) if self.config.ca_bundle else None,
                )
            )
            await self._client.head_bucket(Bucket=self.config.bucket)
        except (ClientError, BotoCoreError) as exc:
            await self._stack.aclose()
            raise self._failed("cannot reach the bucket", exc) from None

    async def close(self) -> None:
        await self._stack.aclose()

    async def backups(self) -> list[RemoteBackup]:
        prefix = self._key("backups/")
        seen: dict[str, bool] = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=prefix
            )
            async for page in pages:
                for item in page.get("Contents", []):
                    backup_id, _, name = str(item["Key"])[len(prefix) :].partition("/")
                    if is_backup_id(backup_id) and name:
                        seen[backup_id] = seen.get(backup_id, False) or name == "manifest.json"
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("cannot list the backups", exc) from None
        return [RemoteBackup(backup_id, seen[backup_id]) for backup_id in sorted(seen)]

    async def holds(self, key: str, size: int, sha256: str) -> bool:
        head = await self._head(key)
        return (
            head is not None
            and head["ContentLength"] == size
            and head.get("Metadata", {}).get(SHA256_META) == sha256
            and bool(head.get("ChecksumSHA256"))
        )

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = await self._client.head_object(
                Bucket=self.config.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in NOT_THERE:
                return None
            raise self._failed(f"cannot look at {key}", exc) from None
        except BotoCoreError as exc:
            raise self._failed(f"cannot look at {key}", exc) from None
        return head

    def _extra(self, sha256: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"Metadata": {SHA256_META: sha256}}
        if self.config.storage_class:
            extra["StorageClass"] = self.config.storage_class
        return extra

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int, sha256: str) -> None:
        try:
            if size <= PART:
                data = b"".join([chunk async for chunk in chunks])
                expected = await self._put_whole(key, data, sha256)
                whole = hashlib.sha256(data).hexdigest()
            else:
                expected, whole = await self._put_parts(key, chunks, sha256)
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(f"cannot write {key}", exc) from None
        if whole != sha256:
            await self._discard(key)
            raise RemoteError(
                f"remote {self.name}: {key} was read as sha256 {whole[:12]}… while sending, not "
                f"{sha256[:12]}… as the manifest says: the local file changed or is damaged "
                "(`lifeboat backup verify`); nothing was kept there"
            )
        head = await self._head(key)
        found = str((head or {}).get("ChecksumSHA256") or "").split("-")[0]
        if head is None or head["ContentLength"] != size or found != expected:
            await self._discard(key)
            raise RemoteError(
                f"remote {self.name}: {key} does not read back as what was sent (size "
                f"{(head or {}).get('ContentLength')}, checksum {found or 'none'}; sent {size} "
                f"bytes, {expected}): the server lost or changed it; copy again"
            )

    async def _put_whole(self, key: str, data: bytes, sha256: str) -> str:
        checksum = _b64(hashlib.sha256(data).digest())
        await self._client.put_object(
            Bucket=self.config.bucket,
            Key=self._key(key),
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
            **self._extra(sha256),
        )
        return checksum

    async def _put_parts(
        self, key: str, chunks: AsyncIterable[bytes], sha256: str
    ) -> tuple[str, str]:
        """A multipart upload of ``chunks``; the expected composite checksum and the sha256
        of what was read."""
        bucket, full_key = self.config.bucket, self._key(key)
        started = await self._client.create_multipart_upload(
            Bucket=bucket, Key=full_key, ChecksumAlgorithm="SHA256", **self._extra(sha256)
        )
        upload_id = started["UploadId"]
        whole = hashlib.sha256()
        digests: dict[int, bytes] = {}
        parts: list[dict[str, Any]] = []
        slots = asyncio.Semaphore(CONCURRENCY)
        sending: set[asyncio.Task[None]] = set()

        def hashed(data: bytes) -> bytes:
            """The part's SHA-256, and the file's sha256 carried on (parts come in order)."""
            whole.update(data)
            return hashlib.sha256(data).digest()

        async def send(number: int, data: bytes, digest: bytes) -> None:
            try:
                answer = await self._client.upload_part(
                    Bucket=bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=_b64(digest),
                )
                digests[number] = digest
                parts.append(
                    {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)}
                )
            finally:
                slots.release()

        try:
            number = 0
            async for data in _parts(chunks):
                await slots.acquire()  # at most CONCURRENCY parts held: memory stays flat
                for task in [t for t in sending if t.done()]:
                    sending.discard(task)
                    task.result()  # a part that failed stops the upload now
                digest = await asyncio.to_thread(hashed, data)  # off the loop, in order
                number += 1
                sending.add(asyncio.create_task(send(number, data, digest)))
            await asyncio.gather(*sending)
            parts.sort(key=lambda part: part["PartNumber"])
            await self._client.complete_multipart_upload(
                Bucket=bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            for task in sending:
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)
            await self._abort(full_key, upload_id)
            raise
        joined = b"".join(digests[number] for number in sorted(digests))
        return _b64(hashlib.sha256(joined).digest()), whole.hexdigest()

    async def _abort(self, full_key: str, upload_id: str) -> None:
        # When the server is gone, its lifecycle rules clear the parts it kept.
        with contextlib.suppress(ClientError, BotoCoreError):
            await self._client.abort_multipart_upload(
                Bucket=self.config.bucket, Key=full_key, UploadId=upload_id
            )

    async def get(self, key: str) -> AsyncIterator[bytes]:
        try:
            answer = await self._client.get_object(Bucket=self.config.bucket, Key=self._key(key))
            async with answer["Body"] as body:
                async for chunk in body.iter_chunks(READ_BLOCK):
                    yield chunk
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in NOT_THERE:
                raise FileNotFoundError(key) from None
            raise self._failed(f"cannot read {key}", exc) from None
        except BotoCoreError as exc:
            raise self._failed(f"cannot read {key}", exc) from None

    async def delete_backup(self, backup_id: str) -> None:
        prefix = self._key(backup_key(backup_id, ""))
        try:
            await self._delete_keys([self._key(backup_key(backup_id))])  # never listed whole
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=prefix
            )
            async for page in pages:
                await self._delete_keys([str(item["Key"]) for item in page.get("Contents", [])])
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(f"cannot remove {backup_id}", exc) from None

    async def _discard(self, key: str) -> None:
        """Remove what does not count (the error that follows says why; this may fail too)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            await self._delete_keys([self._key(key)])

    async def _delete_keys(self, keys: list[str]) -> None:
        if keys:
            await self._client.delete_objects(
                Bucket=self.config.bucket, Delete={"Objects": [{"Key": k} for k in keys]}
            )

    def _failed(self, what: str, exc: Exception) -> RemoteError:
        """One message naming the remote, what failed and the fix."""
        here = f"remote {self.name} ({self.where})"
        if isinstance(exc, NoCredentialsError):
            return RemoteError(
                f"{here}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                f"remotes.{self.name}.profile or credentials_file"
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "404") and what == "cannot reach the bucket":
                return RemoteError(
                    f"{here}: bucket {self.config.bucket} does not exist; create it, or fix "
                    f"remotes.{self.name}.bucket"
                )
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return RemoteError(
                    f"{here}: access denied ({code}): {what}; check the credentials and the "
                    "bucket's policy"
                )
            message = exc.response.get("Error", {}).get("Message") or code
            return RemoteError(f"{here}: {what}: {message}")
        return RemoteError(
            f"{here}: {what}: {exc}; check remotes.{self.name}.endpoint and that the server runs"
        )


async def _parts(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` regrouped into PART-byte parts (the last may be shorter); a chunk that is a
    whole part already (see ``chunk_size``) passes as it is."""
    held = bytearray()
    async for chunk in chunks:
        if not held and len(chunk) == PART:
            yield chunk
            continue
        held += chunk
        while len(held) >= PART:
            yield bytes(held[:PART])
            del held[:PART]
    if held:
        yield bytes(held)
