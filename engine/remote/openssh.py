"""Bulk streams through the system OpenSSH client, when it is installed.

asyncssh decrypts in Python on the event loop's thread, which then also hashes and writes:
on a 2-core machine that reached about 0.4x the rate of ``ssh host cat``. Handing the bulk
bytes of a backup or restore to an ``ssh`` child process moves decryption onto another core,
and the engine only hashes and writes (measured: 0.97-1.04x the rate of ``ssh > file``).

The asyncssh connection of the job is still opened first, so host keys are verified (and
recorded on first use where a host allows it) by the same policy; the ``ssh`` child then
runs with ``StrictHostKeyChecking=yes`` against that same known_hosts file, never prompts
(``BatchMode``) and ignores user ssh configs (``-F /dev/null``): Lifeboat's config is the
only configuration. The child dies with Lifeboat, even of kill -9 (``parent_death_prefix``),
and so does the remote command (``engine.remote.commands.ends_with_channel``).

``ssh`` exits 255 both when it fails (connection lost, authentication) and when the remote
command was killed by a signal, and says nothing about the signal (OpenSSH 9.2, tested
against sshd with ``sh -c 'kill -KILL $$'``); at ``LogLevel=DEBUG1`` its stderr says
``rtype exit-signal`` (or ``exit-status``) when the answer arrives. So ssh logs at that
level, and :class:`_ClientStderr` takes its lines out of the command's stderr as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import shutil
import subprocess
from collections.abc import AsyncIterable

from engine.config.model import HostConfig
from engine.errors import RemoteCommandError
from engine.remote.commands import (
    CIPHERS,
    KEEPALIVE_COUNT_MAX,
    STDERR_TAIL_BYTES,
    CommandOutput,
    OutputSink,
    TailBuffer,
)

REAP_SECONDS = 5.0  # how long a cancelled stream waits for its killed ssh to be reaped
SSH_FAILURE = 255  # ssh's own exit status for connection, authentication and host key errors
# A log line of ssh's own that LogLevel=ERROR would not print: debug and the verbose ones of a
# normal session. Each is written whole, ending in \r\n; what the command wrote without a
# newline just before it comes first on the same line.
_SSH_LOG_LINE = re.compile(
    rb"(.*?)(?:debug\d: |Authenticated to |Transferred: sent |Bytes per second: ).*\r\n"
)
_EXIT_REPORT = re.compile(rb"rtype (exit-status|exit-signal) ")


def openssh_client() -> str | None:
    """Path of the system ``ssh`` client, if any."""
    return shutil.which("ssh")


@functools.cache
def parent_death_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL`` (util-linux) when it works here, so that the ``ssh`` child
    is killed when Lifeboat dies, even by kill -9; else nothing.

    Not ``preexec_fn`` with prctl(): the engine runs threads, and preexec_fn is unsafe then.
    The signal follows the *thread* that started the child: asyncio starts it from the event
    loop's thread, which lives as long as the job.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    argv = (setpriv, "--pdeathsig", "KILL", "--")
    try:  # util-linux before 2.33 has setpriv without --pdeathsig
        works = subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        works = False
    return argv if works else ()


def openssh_argv(client: str, config: HostConfig, command: str) -> list[str]:
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(config.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "ConnectTimeout": str(max(1, round(config.connect_timeout))),
        "ServerAliveInterval": str(max(1, round(config.keepalive_interval))),
        "ServerAliveCountMax": str(KEEPALIVE_COUNT_MAX),
        "Ciphers": ",".join(CIPHERS),
        "LogLevel": "DEBUG1",  # the only level that tells a killed command from a lost link
    }
    argv = [client, "-F", "/dev/null", "-T", "-e", "none", "-p", str(config.port)]
    if config.identity is not None:
        argv += ["-i", str(config.identity), "-o", "IdentitiesOnly=yes"]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, "-l", config.user, "--", config.address, command]


class _ClientStderr:
    """The ``ssh`` client's stderr, parted: its debug and statistics lines are read for how the
    command ended (``exit_report``) and dropped; the rest (the command's stderr and ssh's own
    errors) is kept as a tail for messages."""

    def __init__(self) -> None:
        self.tail = TailBuffer()
        self.exit_report: str | None = None  # "exit-status" or "exit-signal", once sent
        self._line = b""

    def append(self, data: bytes) -> None:
        self._line += data
        *lines, self._line = self._line.split(b"\n")
        for line in lines:
            self._take(line + b"\n")
        if len(self._line) > STDERR_TAIL_BYTES:  # a long line of the command's: no log line
            self.tail.append(self._line)
            self._line = b""

    def _take(self, line: bytes) -> None:
        logged = _SSH_LOG_LINE.fullmatch(line)
        if logged is None:
            self.tail.append(line)
            return
        self.tail.append(logged.group(1))
        report = _EXIT_REPORT.search(line)
        if report is not None:
            self.exit_report = report.group(1).decode()

    def text(self) -> str:
        self.tail.append(self._line)
        self._line = b""
        return self.tail.text()


class _BulkProtocol(asyncio.SubprocessProtocol):
    """Hands stdout to the sink as the pipe delivers it; a full sink pauses the pipe."""

    def __init__(self, on_stdout: OutputSink | None, *, writes_stdout: bool = True) -> None:
        self.on_stdout = on_stdout
        self.stderr = _ClientStderr()
        self.sink_error: BaseException | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self.exited = asyncio.get_running_loop().create_future()
        self.open_pipes = {1, 2} if writes_stdout else {2}  # else stdout is a file
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr.append(data)
        elif self.on_stdout is not None and self.sink_error is None:
            try:
                room = self.on_stdout(data)
            except Exception as exc:  # the sink failed (disk full...): stop the transfer
                self.sink_error = exc
                if self.transport is not None:
                    self.transport.kill()
                return
            stdout = self.transport.get_pipe_transport(1) if self.transport else None
            if room is not None and isinstance(stdout, asyncio.ReadTransport):  # full: wait
                stdout.pause_reading()
                room.add_done_callback(lambda _: stdout.resume_reading())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.open_pipes.discard(fd)
        if not self.open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)
        if fd == 0:
            self.writable.set()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def _feed(
    transport: asyncio.SubprocessTransport, proto: _BulkProtocol, chunks: AsyncIterable[bytes]
) -> None:
    pipe = transport.get_pipe_transport(0)
    assert pipe is not None
    async for chunk in chunks:
        await proto.writable.wait()
        if pipe.is_closing() or proto.exited.done():
            return
        pipe.write(chunk)  # type: ignore[attr-defined]
    await proto.writable.wait()
    if not pipe.is_closing():
        pipe.close()


async def _reaped(proto: _BulkProtocol) -> None:
    """Wait a moment for a killed ``ssh`` to be reaped, so that it never outlives the stream
    (nor the event loop, which would leave it a zombie); a second cancellation stops it."""
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(proto.exited), REAP_SECONDS)


async def stream_openssh(
    client: str,
    name: str,
    config: HostConfig,
    command: str,
    *,
    on_stdout: OutputSink | None,
    stdin: AsyncIterable[bytes] | None,
    ok_statuses: frozenset[int],
    sent: str | None = None,
    stdout_fd: int | None = None,
    stdin_fd: int | None = None,
) -> CommandOutput:
    """Run ``command`` on the host through ``ssh``; same contract as ``SSHHost.stream``.

    ``sent`` is what goes over the wire when it differs from ``command`` (a wrapped one).
    Without ``stdin``, ssh's stdin is still a pipe, held open and never written: when
    Lifeboat dies it closes, which tells a wrapped remote command to end. With ``stdout_fd``
    ssh writes the command's output there itself; with ``stdin_fd`` it reads its input from
    there itself (a file: at its end, the command sees the end of its input).
    """
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(
        lambda: _BulkProtocol(on_stdout, writes_stdout=stdout_fd is None),
        *parent_death_prefix(),
        *openssh_argv(client, config, sent or command),
        stdin=subprocess.PIPE if stdin_fd is None else stdin_fd,
        stdout=subprocess.PIPE if stdout_fd is None else stdout_fd,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C in the terminal is the engine's to handle
    )
    try:
        if stdin is not None:
            await _feed(transport, proto, stdin)
        await asyncio.shield(proto.exited)  # cancelling us must not cancel it: see _reaped
        await proto.pipes_closed
    except BaseException:
        transport.kill()
        await _reaped(proto)
        raise
    finally:
        transport.close()
    if proto.sink_error is not None:
        raise proto.sink_error
    status = transport.get_returncode()
    tail = proto.stderr.text()
    detail = f"; stderr: {tail}" if tail else ""
    if status == SSH_FAILURE and proto.stderr.exit_report == "exit-signal":
        raise RemoteCommandError(
            f"{name}: `{command}` was killed by a signal{detail} (OpenSSH's ssh does not say "
            "which; the host's kernel log may, e.g. the OOM killer)"
        )
    if status == SSH_FAILURE and proto.stderr.exit_report is None:
        raise RemoteCommandError(
            f"{name}: ssh failed or the connection was lost while running `{command}`{detail}; "
            "check the network and the host, then retry"
        )
    if status is None or status not in ok_statuses:
        raise RemoteCommandError(f"{name}: `{command}` exited with status {status}{detail}")
    return CommandOutput(b"", tail, status)
