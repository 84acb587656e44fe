"""``lifeboat notify test`` against a real HTTP receiver on loopback: per-URL delivery, exit 1
when one is not delivered, and never a URL's secret in what it prints."""

from __future__ import annotations

import json
from pathlib import Path

from cli_run import lifeboat
from webhook import running_webhook

SECRET = "s3cr3t-t0ken-in-the-url"


def write_config(tmp_path: Path, urls: list[str], events: str = "") -> Path:
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        f'operator = "tester"\n[repository]\npath = "{tmp_path / "repo"}"\n'
        f"[notify.oncall]\nurls = {json.dumps(urls)}\n{events}"
    )
    return path


async def test_a_test_notice_reaches_every_url(tmp_path: Path) -> None:
    with running_webhook() as hook:
        config = write_config(tmp_path, [hook.url(SECRET)])
        run = await lifeboat("notify", "test", config=config)
        assert run.rc == 0, run.stderr
        assert run.stdout.strip() == "1 of 1 URL(s) delivered (oncall)"
        [(path, body)] = hook.received
        assert path == f"/{SECRET}"
        assert body["title"] == "Lifeboat test notice (test)"
        assert body["type"] == "info"


async def test_an_undelivered_url_exits_1_without_its_secret(tmp_path: Path) -> None:
    with running_webhook() as hook:
        hook.failing = True
        config = write_config(tmp_path, [hook.url(SECRET), f"json://127.0.0.1:1/{SECRET}"])
        run = await lifeboat("notify", "test", config=config)
    assert run.rc == 1
    assert run.stdout.strip() == "0 of 2 URL(s) delivered (oncall)"
    assert "notify.oncall URL 1 (json://): not delivered" in run.stderr
    assert "notify.oncall URL 2 (json://): not delivered" in run.stderr
    assert SECRET not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


async def test_an_event_no_channel_wants_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, ["json://127.0.0.1:1/x"], 'events = ["rpo.breach"]\n')
    run = await lifeboat("notify", "test", "--event", "drill.failed", config=config)
    assert run.rc == 2
    assert "no channel wants drill.failed" in run.stderr
    assert "Traceback" not in run.stderr
