"""Regenerate the README's screenshots headlessly from the demo sandbox (`make screenshots`).

Everything shown is real: a fresh sandbox, real backups over its in-process SSH server, and
the console driven through Textual's test harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from engine.config.load import load_config
from engine.config.model import Config
from engine.demo.sandbox import open_sandbox
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.repository import Repository
from engine.schedule.daemon import Scheduler
from engine.schedule.ticks import local_claimer
from tui.console.app import LifeboatApp, make_app
from tui.console.screens.checklist import open_checklist
from tui.console.screens.identity import IdentityModal
from tui.console.screens.wizard import RestoreWizard

HERE = Path(__file__).resolve().parent
WIDE = (120, 36)
NARROW = (80, 24)


def ignore(_event: object) -> None:
    """Screenshot preparation runs quietly."""


async def _wait_for_progress(app: LifeboatApp, key: str, pilot: Pilot[None]) -> None:
    """Until the slow demo source is well under way (bounded: 20 s)."""
    for _ in range(200):
        state = app.board.jobs[key].sources.get("app-logs")
        if state is not None and state.done > 1_500_000:
            return
        await pilot.pause(0.1)
    raise RuntimeError("the demo backup made no progress")


async def _start_scheduler_once(config: Config, repo: Repository) -> None:
    """Start the real scheduler and stop it: it takes note of the schedules (as `lifeboat demo`
    does), so they show their next runs rather than "never run"."""
    daemon = Scheduler(config, repo, local_claimer(repo, config.operator), ignore_log, "shots")
    task = asyncio.create_task(daemon.run())
    await asyncio.sleep(0.5)
    daemon.stop(cancel=True)
    await task


def ignore_log(*_args: object, **_fields: object) -> None:
    """The scheduler's log, unused here."""


async def shoot(root: Path) -> list[Path]:
    saved: list[Path] = []
    async with open_sandbox(root / "sandbox") as sandbox:
        config = load_config(sandbox.config_path)
        repo = Repository.open(config.repository.path)
        keyring = sandbox.keyring()  # the demo's backups are encrypted; `lifeboat demo` has it
        for label in ("nightly", "pre-v1.4-upgrade"):
            manifest = await run_backup(config, repo, BackupRequest(label=label), ignore)
            await run_verify(repo, manifest.id, ignore, keyring=keyring)
        await _start_scheduler_once(config, repo)
        plan = plan_drill(config, DrillRequest(keyring=keyring))
        request = DrillRequest(confirm=plan.confirm_names, keyring=keyring)
        drill = await run_drill(config, repo, request, ignore)
        if not drill.passed:
            raise RuntimeError(f"the demo drill failed: {drill.problems}")
        for size, name in ((WIDE, "dashboard-backup-running"), (NARROW, "dashboard-80x24")):
            app = make_app(config, settings=root / "console.json", keyring=keyring)
            async with app.run_test(size=size) as pilot:
                key = app.start_backup(label="manual")
                await _wait_for_progress(app, key, pilot)
                saved.append(Path(app.save_screenshot(f"{name}.svg", str(HERE))))
                app.cancel_job(key)
                with contextlib.suppress(WorkerCancelled):
                    await app.workers.wait_for_complete()
        app = make_app(config, settings=root / "console.json", keyring=keyring)
        async with app.run_test(size=WIDE) as pilot:
            await pilot.press("l")
            await _settle(app, pilot)
            saved.append(Path(app.save_screenshot("browser-detail.svg", str(HERE))))
            await pilot.press("v")
            await _settle(app, pilot)
            saved.append(Path(app.save_screenshot("browser-verify-result.svg", str(HERE))))
        app = make_app(config, settings=root / "console.json", keyring=keyring)
        async with app.run_test(size=NARROW) as pilot:
            await pilot.press("r")  # the guided restore, from the dashboard
            await pilot.pause()
            wizard = app.screen
            assert isinstance(wizard, RestoreWizard)
            scenarios = [choice.value for choice in wizard.state.tree.scenarios()]
            await pilot.press(*["down"] * scenarios.index("module-removed"), "enter")
            await pilot.press(*"app.users", "enter")
            await pilot.pause()
            saved.append(Path(app.save_screenshot("wizard-plan.svg", str(HERE))))
            await pilot.press("ctrl+n", "enter", "enter")  # plan, newest verified backup, target
            await _settle(app, pilot)
            saved.append(Path(app.save_screenshot("wizard-checks.svg", str(HERE))))
            await pilot.press("ctrl+n")
            await pilot.pause()
            await pilot.press(*"dem")
            await pilot.pause()
            saved.append(Path(app.save_screenshot("wizard-confirm.svg", str(HERE))))
            await pilot.press("escape")
            await _settle(app, pilot)
        app = make_app(config, settings=root / "console.json")  # no identity given yet
        async with app.run_test(size=NARROW) as pilot:
            await pilot.press("r")
            await pilot.pause()
            other = scenarios.index("other")  # every source in place
            await pilot.press(*["down"] * other, "enter", "ctrl+n", "enter", "enter")
            await pilot.pause(0.5)
            assert isinstance(app.screen, IdentityModal)
            saved.append(Path(app.save_screenshot("wizard-identity.svg", str(HERE))))
        app = make_app(config, settings=root / "console.json", keyring=keyring)
        async with app.run_test(size=NARROW) as pilot:
            await pilot.press("D")
            await pilot.pause()
            saved.append(Path(app.save_screenshot("drills.svg", str(HERE))))
            open_checklist(app, manifest.id, name="demo-drill")  # pre-v1.4-upgrade
            await _settle(app, pilot)
            await app.workers.wait_for_complete()
            await pilot.pause(0.5)
            saved.append(Path(app.save_screenshot("checklist.svg", str(HERE))))
    return saved


async def _settle(app: LifeboatApp, pilot: Pilot[None]) -> None:
    """Let the console's jobs finish and the screen catch up (dialog flows keep waiting)."""
    for _ in range(100):
        if not app.board.running():
            break
        await pilot.pause(0.1)
    await pilot.pause(0.5)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lifeboat-shots-") as tmp:
        for path in asyncio.run(shoot(Path(tmp))):
            print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
