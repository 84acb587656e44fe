"""Off-host copies in the console: the browser says where each backup lives and copies the
highlighted one with `o`, to the remote chosen when there are several (moto's S3 server and
an SFTP directory on the in-process SSH server)."""

from __future__ import annotations

from pathlib import Path

from consoles import console
from helpers import EventLog, command_source, config_text
from s3_server import S3Server, s3_remote_toml
from sshd import SSHTestServer
from timing import pilot_until
from wizard_pilot import choose, flat, open_wizard, settle, shown

from engine.config.load import parse_config
from engine.config.model import Config
from engine.jobs import BackupRequest, run_backup
from engine.offsite.connect import connected
from engine.offsite.copy import run_copy
from engine.offsite.listing import list_remote
from engine.repo.repository import Repository
from engine.repo.retention import delete_backup
from tui.console.screens.backups import BackupsScreen
from tui.console.screens.modals import ChoiceModal
from tui.console.screens.wizard import RestoreWizard
from tui.console.wizard_state import Step


def offsite(ssh: SSHTestServer, tmp_path: Path, remotes: str) -> tuple[Config, Repository]:
    """A command source ``db`` on the SSH server, ``remotes``, and the repository."""
    sources = command_source("db", ["echo", "data"])
    config = parse_config(config_text(ssh, tmp_path / "repo", sources) + remotes)
    return config, Repository.open(config.repository.path)


async def test_the_browser_copies_a_backup_off_host_and_says_where_it_lives(
    asyncssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    vault = f'[remotes.vault]\nkind = "sftp"\nhost = "h1"\npath = "{tmp_path / "vault"}"\n'
    config, repo = offsite(asyncssh_server, tmp_path, s3_remote_toml(s3) + vault)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, BackupsScreen)

        def detail() -> str:
            return flat(shown(screen, "#detail-body"))

        assert "copies local only (o: copy it)" in detail()
        await pilot.press("o")
        await pilot_until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the remotes")
        await pilot.press("down", "enter")  # offsite, then vault
        await settle(app, pilot)
        (job,) = [j for j in app.board.jobs.values() if j.kind == "copy"]
        assert job.finished is not None
        assert job.finished.ok
        await pilot_until(pilot, lambda: "local, and on vault" in detail(), "the copy shown")
    async with connected(config, "vault") as remote:
        assert [m.id for m in (await list_remote(remote)).manifests] == [manifest.id]


async def test_a_copy_the_repository_lacks_is_fetched_and_restored_from_the_browser(
    asyncssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    config, repo = offsite(asyncssh_server, tmp_path, s3_remote_toml(s3))
    manifest = await run_backup(config, repo, BackupRequest(label="kept"), EventLog().emit)
    await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    delete_backup(repo, manifest.id, "tester")  # pruned here; the remote keeps its copy

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await settle(app, pilot)
        await pilot.press("f")  # the only remote: its copies are listed at once
        await pilot_until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the copies")
        await pilot.press("enter")
        await settle(app, pilot)
        (job,) = [j for j in app.board.jobs.values() if j.kind == "fetch"]
        assert job.finished is not None
        assert job.finished.ok
        await pilot_until(pilot, lambda: manifest.id in app.backups.order, "the fetched backup")
        await settle(app, pilot)
        await pilot.press("r")
        await pilot_until(pilot, lambda: isinstance(app.screen, RestoreWizard), "the wizard")
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        assert wizard.state.backup is not None
        assert wizard.state.backup.id == manifest.id
    assert repo.load(manifest.id) == manifest


async def test_the_wizard_fetches_a_remote_copy_on_its_backup_step(
    asyncssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    config, repo = offsite(asyncssh_server, tmp_path, s3_remote_toml(s3))
    older = await run_backup(config, repo, BackupRequest(label="older"), EventLog().emit)
    here = await run_backup(config, repo, BackupRequest(label="here"), EventLog().emit)
    await run_copy(config, repo, "offsite", [older.id], EventLog().emit)
    delete_backup(repo, older.id, "tester")

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n")  # the plan as offered: the backup step
        await settle(app, pilot)
        assert wizard.state.step is Step.BACKUP
        assert [row.id for row in wizard.state.listed or ()] == [here.id]
        assert "f fetches a copy from a remote" in flat(shown(wizard, "#backup-reason"))
        await pilot.press("f")
        await pilot_until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the copies")
        await pilot.press("enter")
        await pilot_until(
            pilot, lambda: len(wizard.state.listed or ()) == 2, "the fetched backup listed"
        )
        assert wizard.state.backup is not None
        assert wizard.state.backup.id == older.id  # highlighted, ready to restore from
