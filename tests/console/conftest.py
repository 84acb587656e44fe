"""Fixtures for every console test."""

from __future__ import annotations

import pytest

from tui.console.app import LifeboatApp

SNAPSHOT_PLACE = "/etc/lifeboat/lifeboat.toml"  # the header's place in every snapshot


@pytest.fixture(autouse=True)
def _a_fixed_place_in_snapshots(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header names the config file (or the repository), which a test keeps under its
    own temporary directory: a snapshot shows one fixed path instead, so it stays the same
    from run to run."""
    if "snap_compare" in request.fixturenames:
        monkeypatch.setattr(LifeboatApp, "place", property(lambda _: SNAPSHOT_PLACE))
