"""Encrypted backups in the console: the wizard asks for the identity before its checks (and
says why an answer does not open the backup), keeps it for the session, restores; the
browser says who can open a backup."""

from __future__ import annotations

from pathlib import Path

from age_keys import encryption_toml, keygen, protect
from consoles import console
from helpers import EventLog, command_source, make_config
from rich.console import Console
from sshd import SSHTestServer
from textual.widgets import Input
from timing import pilot_until
from wizard_pilot import choose, flat, open_wizard, settle, shown

from engine.jobs import BackupRequest, run_backup
from engine.repo.repository import Repository
from tui.console.screens.identity import IdentityModal
from tui.console.widgets.backup_detail import describe_backup
from tui.console.wizard_state import Step

DUMP = b"encrypted at rest\n" * 200
PASSPHRASE = "correct horse battery"


async def test_the_wizard_asks_for_the_identity_then_restores_an_encrypted_backup(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    identity, key = keygen(tmp_path)
    _other, other_key = keygen(tmp_path, "other.txt")
    protected = protect(key, PASSPHRASE)  # the identity file behind a passphrase (age -p)
    dump = tmp_path / "dump.sql"
    dump.write_bytes(DUMP)
    target = tmp_path / "restored.sql"
    sources = command_source("db", ["cat", str(dump)], ["dd", f"of={target}", "status=none"])
    config = make_config(asyncssh_server, tmp_path / "repo", sources + encryption_toml(identity))
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(label="nightly"), EventLog().emit)
    dump.write_bytes(b"")  # a safety backup of the empty state works too
    shown_detail = Console(width=80, record=True)
    shown_detail.print(describe_backup(manifest, None))
    lines = [line.strip() for line in shown_detail.export_text().splitlines()]
    stored = lines.index("stored   encrypted (age); the identity of any of these opens it:")
    assert lines[stored + 1] == str(identity.recipient)

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter", "enter")  # plan, backup, target
        await pilot_until(pilot, lambda: isinstance(app.screen, IdentityModal), "the dialog")
        modal = app.screen
        assert isinstance(modal, IdentityModal)
        await pilot.pause()
        assert str(identity.recipient)[:18] in flat(shown(modal, "#about"))
        assert modal.query_one("#identity", Input).password

        typed = modal.query_one("#identity", Input)
        assert typed.has_focus
        for wrong, says in [
            (tmp_path / "absent.txt", "cannot read the identity file"),
            (other_key, "not one of these recipients"),
        ]:
            typed.value = str(wrong)  # as pasted
            await pilot.press("enter")
            await pilot_until(pilot, lambda s=says: s in flat(shown(modal, "#problem")), says)
            assert app.screen is modal

        typed.value = str(protected)
        await pilot.press("enter")
        passphrase = modal.query_one("#passphrase", Input)
        await pilot_until(pilot, lambda: passphrase.has_focus, "the passphrase asked for")
        assert passphrase.password
        passphrase.value = "not it"
        await pilot.press("enter")
        said = "protected by a passphrase: give the right one"
        await pilot_until(pilot, lambda: said in flat(shown(modal, "#problem")), said)
        passphrase.value = PASSPHRASE
        await pilot.press("enter")
        await pilot_until(pilot, lambda: app.screen is wizard, "the wizard again")
        await settle(app, pilot)
        assert wizard.state.step is Step.CHECKS
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        assert app.keyring.identities == (identity,)
        await pilot.press("enter", *"h1", "enter")  # to Confirm; type the host's name
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        assert "Restored db." in flat(shown(wizard, "#done-text"))
    assert target.read_bytes() == DUMP
    assert repo.load(manifest.id).encrypted
    safety = [m for m in repo.list_backups()[0] if m.trigger == "pre-restore"]
    assert [m.encrypted for m in safety] == [True]
