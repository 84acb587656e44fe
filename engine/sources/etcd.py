"""The ``etcd`` source: a member's snapshot through an SSH tunnel; restores into a fresh dir.

The snapshot is read with the etcd3 client's gRPC stub directly, because each response
carries ``remaining_bytes``, which gives exact progress. The blocking gRPC client runs in a
thread so the event loop (which carries the tunnel) keeps running. A restore never touches
a live data directory: it writes ``<data_dir>.restored-<backup id>`` and only a ``--swap``
with configured stop/start commands moves it into place, keeping the old one aside.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from engine.checks import Check, compare_versions
from engine.config.sources import EtcdSourceConfig
from engine.errors import LifeboatError, RemoteCommandError
from engine.remote.commands import quote_command
from engine.remote.hostfacts import file_sha256, probe_path
from engine.repo.manifest import Artifact, ArtifactFile
from engine.repo.sink import BlockingSink
from engine.sources.base import Preflight, RestoreOptions, Source, SourceContext

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

SNAPSHOT_SUFFIX = "snapshot.db"
SAFETY_FAILS_TOO = (
    "the restore does not need it, but a safety backup of it fails the same way: fix that, "
    "or skip the safety backup with a reason"
)
STATUS_TIMEOUT = 10.0  # seconds for the validator's status call
WAL_BYTES = 64 * 1024 * 1024  # a restored member preallocates its first WAL file
T = TypeVar("T")


class EtcdError(LifeboatError):
    """etcd refused or failed a request; ``not_answering`` when nothing answered at all (a
    member down, as after a lost quorum), rather than a member that refused the client."""

    def __init__(self, message: str, *, not_answering: bool = False) -> None:
        super().__init__(message)
        self.not_answering = not_answering


class EtcdSource(Source):
    kind: ClassVar[str] = "etcd"
    artifact_kind: ClassVar[str] = "etcd-snapshot"
    config: EtcdSourceConfig

    async def backup(self, ctx: SourceContext) -> Artifact:
        address, port = self.config.endpoint.rsplit(":", 1)
        filename = f"{self.name}.{SNAPSHOT_SUFFIX}"
        sink = ctx.sink(filename)
        meter = ctx.meter()
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(meter.update, done, total)

        try:
            ca_sha256 = await self._ca_fingerprint(ctx.host)
            async with ctx.host.forward_local(address, int(port)) as local_port:
                ctx.stage("snapshot")
                meta = await asyncio.to_thread(self._snapshot, local_port, sink, progress)
            entry = await asyncio.to_thread(sink.finish)  # its fsync: off the event loop
        finally:
            sink.close()
        meter.finish()
        if ca_sha256:
            meta["ca_sha256"] = ca_sha256
        return Artifact(
            source=self.name, kind=self.artifact_kind, host=ctx.host.name, files=(entry,), meta=meta
        )

    async def _ca_fingerprint(self, host: SSHHost) -> str | None:
        """The sha256 of ``ca_file`` on ``host`` (None when no ca_file is configured)."""
        if self.config.ca_file is None:
            return None
        digest = await file_sha256(host, str(self.config.ca_file))
        if digest is None:
            raise EtcdError(
                f"{self.name}: ca_file {self.config.ca_file} cannot be read on {host.name}; "
                f"fix sources.{self.name}.ca_file or the file's permissions"
            )
        return digest

    def _client(self, local_port: int, timeout: float | None = None) -> Any:
        import etcd3  # grpc is heavy: imported only when an etcd source runs

        return etcd3.client(
            host="127.0.0.1",
            port=local_port,
            ca_cert=str(self.config.cacert) if self.config.cacert else None,
            cert_cert=str(self.config.cert) if self.config.cert else None,
            cert_key=str(self.config.key) if self.config.key else None,
            timeout=timeout or self.config.timeout,
        )

    def _snapshot(
        self,
        local_port: int,
        sink: BlockingSink[ArtifactFile],
        progress: Callable[[int, int], None],
    ) -> dict[str, Any]:
        """Stream the snapshot into ``sink`` (in a worker thread) and describe the member."""
        import grpc
        from etcd3 import etcdrpc

        client = self._client(local_port)
        call = {"credentials": client.call_credentials, "metadata": client.metadata}
        try:
            status = client.maintenancestub.Status(etcdrpc.StatusRequest(), 30, **call)
            keys = client.kvstub.Range(
                etcdrpc.RangeRequest(key=b"\0", range_end=b"\0", count_only=True), 30, **call
            )
            done = 0
            stream = client.maintenancestub.Snapshot(
                etcdrpc.SnapshotRequest(), self.config.timeout, **call
            )
            for response in stream:
                sink.write(response.blob)
                done += len(response.blob)
                progress(done, done + response.remaining_bytes)
        except grpc.RpcError as exc:
            raise self._rpc_failure(exc.code().name, exc.details() or "") from None
        finally:
            client.close()
        return {
            "revision": keys.header.revision,
            "member_id": f"{status.header.member_id:x}",
            "server_version": status.version,
            "db_size": status.dbSize,
            "key_count": keys.count,
        }

    async def key_count(self, host: SSHHost, prefix: str, deadline: float) -> int:
        """How many keys start with ``prefix`` (all keys when empty), through a tunnel."""
        return await self.with_client(host, partial(self._count, prefix.encode()), deadline)

    async def with_client(self, host: SSHHost, call: Callable[[Any], T], rpc_seconds: float) -> T:
        """``call(client)`` with an etcd3 client through a tunnel from ``host``, in a thread
        (the blocking client must not stop the loop that carries the tunnel); each RPC may
        take ``rpc_seconds``."""
        import grpc
        from etcd3.exceptions import Etcd3Exception

        address, port = self.config.endpoint.rsplit(":", 1)
        async with host.forward_local(address, int(port)) as local_port:

            def in_thread() -> T:
                client = self._client(local_port, timeout=rpc_seconds)
                try:
                    return call(client)
                except grpc.RpcError as exc:
                    code, details = exc.code().name, exc.details() or ""
                    raise self._rpc_failure(code, details) from None
                except Etcd3Exception as exc:  # the client maps UNAVAILABLE etc. to its own
                    raise self._rpc_failure(type(exc).__name__, str(exc)) from None
                finally:
                    client.close()

            return await asyncio.to_thread(in_thread)

    def _rpc_failure(self, code: str, details: str) -> EtcdError:
        """A failed etcd request in the operator's terms: a member that does not answer is
        what an incident looks like, not a config mistake; the tunnel's own address (a local
        port that means nothing to anyone) is left out."""
        endpoint = f"etcd at {self.config.endpoint}"
        details = _TUNNEL_ADDRESS.sub("", details).strip(" :;,")
        if re.search(r"ssl|tls|handshake|certificate", details, re.IGNORECASE):
            return EtcdError(
                f"{endpoint}: the TLS handshake failed ({details}); check "
                f"sources.{self.name}.cacert, .cert and .key"
            )
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return EtcdError(f"{endpoint} refused the client ({code}: {details})")
        if code in _NOT_ANSWERING:
            return EtcdError(
                f"{endpoint} does not answer: the member is down or cannot be reached",
                not_answering=True,
            )
        return EtcdError(
            f"{endpoint} failed: {code}: {details}" if details else f"{endpoint} failed: {code}"
        )

    @staticmethod
    def _count(prefix: bytes, client: Any) -> int:
        from etcd3 import etcdrpc
        from etcd3.utils import prefix_range_end

        key, end = (prefix, prefix_range_end(prefix)) if prefix else (b"\0", b"\0")
        request = etcdrpc.RangeRequest(key=key, range_end=end, count_only=True)
        call = {"credentials": client.call_credentials, "metadata": client.metadata}
        return int(client.kvstub.Range(request, client.timeout, **call).count)

    # -- restore ---------------------------------------------------------------------------

    async def preflight(self, check: Preflight) -> list[Check]:
        host, artifact = check.host, check.artifact
        checks: list[Check] = []
        tool = await self._restore_tool(host)
        if tool is None:
            checks.append(
                Check.fail(
                    f"tools {host.name}",
                    "neither etcdutl nor etcdctl is installed; install etcd's tools there",
                )
            )
        found = await self._live_version(host, checks)
        if not found and tool is not None:
            found = await self._tool_version(host, tool)
        if found:
            checks.append(
                compare_versions(self.name, artifact.meta.get("server_version", ""), found)
            )
        if self.config.data_dir is not None:
            target = self.restore_dir(check.backup_id)
            facts = await probe_path(host, target)
            if facts.exists:
                checks.append(
                    Check.fail(
                        f"restore dir {host.name}",
                        f"{target} already exists; a restore never writes over a data dir: "
                        "remove or rename it",
                    )
                )
            else:
                checks.append(Check.ok(f"restore dir {host.name}", f"{target} is free"))
            aside = self.aside_dir(check.backup_id)
            if check.options.swap and (await probe_path(host, aside)).exists:
                checks.append(
                    Check.fail(
                        f"swap {host.name}",
                        f"{aside} exists (an earlier swap kept the data dir there): move it "
                        "away first, or the data dir before this restore has nowhere to go",
                    )
                )
            (entry,) = artifact.files
            checks.append(check.space(facts.existing, facts.free_bytes, entry.bytes + WAL_BYTES))
        if self.config.ca_file is not None:
            checks.append(await self._ca_check(host, artifact.meta.get("ca_sha256")))
        return checks

    async def _live_version(self, host: SSHHost, checks: list[Check]) -> str | None:
        """The member's version when it answers; a warning (not a failure) when it does not,
        since restoring after a lost quorum is exactly when it will not."""
        address, port = self.config.endpoint.rsplit(":", 1)
        name = f"etcd {self.name}"
        try:
            async with host.forward_local(address, int(port)) as local_port:
                version = await asyncio.to_thread(self._status_version, local_port)
        except (LifeboatError, OSError) as exc:
            if isinstance(exc, EtcdError) and exc.not_answering:
                checks.append(
                    Check.warning(
                        name,
                        f"{exc}; expected when quorum is lost: the restore does not need it, "
                        "and there is no current state to save from it",
                        down=self.name,
                    )
                )
            else:  # it runs but refuses this client, or the tunnel failed: never taken for down
                checks.append(Check.warning(name, f"{exc}; {SAFETY_FAILS_TOO}"))
            return None
        checks.append(Check.ok(name, f"{self.config.endpoint} answers (etcd {version})"))
        return version

    def _status_version(self, local_port: int) -> str:
        import grpc
        from etcd3.exceptions import Etcd3Exception

        client = self._client(local_port, timeout=STATUS_TIMEOUT)
        try:
            return str(client.status().version)
        except grpc.RpcError as exc:
            raise self._rpc_failure(exc.code().name, exc.details() or "") from None
        except Etcd3Exception as exc:  # the client maps UNAVAILABLE etc. to its own errors
            raise self._rpc_failure(type(exc).__name__, str(exc)) from None
        finally:
            client.close()

    async def _tool_version(self, host: SSHHost, tool: str) -> str | None:
        output = await host.capture(["env", "ETCDCTL_API=3", tool, "version"], ok_statuses=_ANY)
        match = re.search(r"version:\s*v?(\d+\.\d+\.\d+)", output.stdout.decode(errors="replace"))
        return match[1] if match else None

    async def _ca_check(self, host: SSHHost, recorded: object) -> Check:
        name = f"CA {host.name}"
        found = await file_sha256(host, str(self.config.ca_file))
        if not isinstance(recorded, str):
            return Check.warning(
                name, "the backup did not record the CA's fingerprint; compare the CA by hand"
            )
        if found is None:
            return Check.fail(
                name, f"{self.config.ca_file} cannot be read on {host.name}; restore the CA first"
            )
        if found != recorded:
            return Check.fail(
                name,
                f"{self.config.ca_file} on {host.name} is sha256 {found[:16]}…, the backup was "
                f"taken with {recorded[:16]}…: etcd would come back with another CA than the "
                "one on disk and refuse to start; restore the CA files from the same time first",
            )
        return Check.ok(name, f"{self.config.ca_file} matches the backup ({found[:16]}…)")

    def restore_dir(self, backup_id: str) -> str:
        assert self.config.data_dir is not None
        return f"{self.config.data_dir}.restored-{backup_id}"

    def aside_dir(self, backup_id: str) -> str:
        """Where a swap keeps the data directory it replaced."""
        return f"{self.config.data_dir}.before-{backup_id}"

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        if self.config.data_dir is None:
            return f"nothing (sources.{self.name}.data_dir is not set)"
        target, data_dir = self.restore_dir(backup_id), self.config.data_dir
        if options.swap:
            return (
                f"the snapshot is restored into {target}; then etcd is stopped, {data_dir} "
                f"is moved aside to {self.aside_dir(backup_id)}, the restored directory takes "
                "its place and etcd is started on it"
            )
        return (
            f"{data_dir} is left in place: the snapshot is restored into a new directory, "
            f"{target}, which etcd uses only once it is moved in and the member started on it"
        )

    def after_restore(self, options: RestoreOptions, backup_id: str) -> tuple[str, ...]:
        if self.config.data_dir is None:
            return ()
        data_dir, aside = str(self.config.data_dir), self.aside_dir(backup_id)
        if options.swap:
            return (f"etcd runs on the restored data; the data before is kept in {aside}",)
        target = self.restore_dir(backup_id)
        stop = shlex.join(self.config.stop) if self.config.stop else "# stop this etcd member"
        return (
            f"restored into {target}; to bring it live, stop every member of the cluster, "
            "then run on this member's host:",
            stop,
            shlex.join(["mv", "-T", "--", data_dir, aside]),
            shlex.join(["mv", "-T", "--", target, data_dir]),
            shlex.join(self.config.start) if self.config.start else self._member_command(),
        )

    def _member_command(self) -> str:
        """The command line that starts this member on its (restored) data directory."""
        scheme = "https" if self.config.cacert else "http"
        client_url = f"{scheme}://{self.config.endpoint}"
        argv = ["etcd", f"--data-dir={self.config.data_dir}"]
        if self.config.name:
            argv.append(f"--name={self.config.name}")
        argv += [f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}"]
        if self.config.initial_advertise_peer_urls:
            peers = self.config.initial_advertise_peer_urls
            argv += [f"--listen-peer-urls={peers}", f"--initial-advertise-peer-urls={peers}"]
        if self.config.initial_cluster:
            argv.append(f"--initial-cluster={self.config.initial_cluster}")
        if self.config.cacert:  # its server certificate is not in Lifeboat's config
            return shlex.join(argv) + "  # plus its server TLS flags (--cert-file, --key-file)"
        return shlex.join(argv)

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        if self.config.data_dir is None:
            problems.append(
                f"sources.{self.name}.data_dir: needed to restore (the restore goes into a "
                'fresh directory beside it); e.g. data_dir = "/var/lib/etcd"'
            )
        if options.swap and not (self.config.stop and self.config.start):
            problems.append(
                f"--swap needs sources.{self.name}.stop and .start commands, e.g. "
                'stop = ["systemctl", "stop", "etcd"]'
            )
        return problems

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        (entry,) = artifact.files
        backup_id = ctx.directory.name
        target = self.restore_dir(backup_id)
        host = ctx.host
        exists = await host.capture(["test", "-e", target], ok_statuses=_ANY)
        if exists.exit_status == 0:
            raise RemoteCommandError(
                f"{host.name}: {target} already exists; a restore never writes over a data dir. "
                "Remove or rename it, then retry"
            )
        upload = f"{target}.{SNAPSHOT_SUFFIX}"
        ctx.stage("uploading snapshot")
        meter = ctx.meter(entry.content_bytes)
        await host.put_stream(ctx.chunks(entry, meter), upload)
        meter.finish()
        try:
            ctx.stage(f"restoring into {target}")
            await host.stream(await self._restore_command(host, upload, target))
        finally:
            await host.capture(["rm", "-f", "--", upload], ok_statuses=_ANY)
        if options.swap:
            await self._swap(ctx, target, backup_id)
        else:
            ctx.log("\n".join(self.after_restore(options, backup_id)), "warning")

    async def _restore_command(self, host: SSHHost, snapshot: str, target: str) -> str:
        options = {
            "--data-dir": target,
            "--name": self.config.name,
            "--initial-cluster": self.config.initial_cluster,
            "--initial-advertise-peer-urls": self.config.initial_advertise_peer_urls,
            "--initial-cluster-token": self.config.initial_cluster_token,
        }
        args = [f"{flag}={value}" for flag, value in options.items() if value]
        tool = await self._restore_tool(host)
        if tool is None:
            raise RemoteCommandError(
                f"{host.name}: neither etcdutl nor etcdctl is installed; install etcd's tools there"
            )
        return quote_command(["env", "ETCDCTL_API=3", tool, "snapshot", "restore", snapshot, *args])

    async def _restore_tool(self, host: SSHHost) -> str | None:
        """etcdutl (3.5+), else etcdctl (3.4, Debian, has no etcdutl), else None."""
        for tool in ("etcdutl", "etcdctl"):
            if await host.has_command(tool):
                return tool
        return None

    async def _swap(self, ctx: SourceContext, target: str, backup_id: str) -> None:
        assert self.config.stop
        assert self.config.start
        assert self.config.data_dir
        data_dir = str(self.config.data_dir)
        aside = self.aside_dir(backup_id)
        ctx.stage("stopping etcd")
        await ctx.host.stream(self.config.stop)
        ctx.stage(f"swapping data dir (old one kept as {aside})")
        await ctx.host.stream(
            " && ".join(
                [
                    f"if [ -e {quote_command([data_dir])} ]; then "
                    + quote_command(["mv", "-T", "--", data_dir, aside])
                    + "; fi",
                    quote_command(["mv", "-T", "--", target, data_dir]),
                ]
            )
        )
        ctx.stage("starting etcd")
        await ctx.host.stream(self.config.start)
        ctx.log(f"etcd restarted on the restored data; the old data dir is {aside}")


_ANY = frozenset(range(256))
_NOT_ANSWERING = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "ConnectionFailedError", "ConnectionTimeoutError"}
)
_TUNNEL_ADDRESS = re.compile(r"(?:ipv[46]:)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]):\d+:?")
