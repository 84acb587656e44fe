"""The postgres source against a real PostgreSQL through both SSH servers: each database by
pg_dump -Fc with the roles, read as it streams (exact rows per table), verified
structurally, restored whole, by table globs or into another database, in one transaction,
from the engine, the CLI and the wizard at 80x24; drilled; checked by checklist items;
refused clearly with a damaged dump, a wrong password, an older target or missing roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checklists import item, write_checklist
from cli_run import lifeboat, write_config
from consoles import console
from helpers import EventLog, config_text
from pg_server import PASSWORD, PostgresServer
from sshd import SSHTestServer, free_port
from wizard_pilot import answer, choose, flat, open_wizard, run_checks, settle, shown

from engine.checklist.model import checklists_for
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.config.model import Config
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.jobs import BackupRequest, JobFailedError, run_backup, run_verify
from engine.repo import audit
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources.base import RestoreOptions
from tui.console.wizard_state import Step


def seeded(postgres: PostgresServer) -> str:
    return postgres.seeded("shop", items=300, invoices=40)


def pg_config_text(
    ssh: SSHTestServer, tmp_path: Path, postgres: PostgresServer, *databases: str, **extra: object
) -> str:
    password = tmp_path / "pg.password"
    if not password.exists():
        password.write_text(PASSWORD + "\n")
    settings = {"password_file": str(password)} | extra
    source = (
        f'[sources.db]\nkind = "postgres"\nhost = "h1"\nport = {postgres.port}\n'
        f"databases = {json.dumps(list(databases))}\nbin_dir = {json.dumps(str(postgres.bin))}\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
    return config_text(ssh, tmp_path / "repo", source)


def pg_config(
    ssh: SSHTestServer, tmp_path: Path, postgres: PostgresServer, *databases: str, **extra: object
) -> Config:
    return parse_config(pg_config_text(ssh, tmp_path, postgres, *databases, **extra))


async def backed_up(
    ssh: SSHTestServer, tmp_path: Path, postgres: PostgresServer, *databases: str
) -> tuple[Config, Repository, Manifest]:
    config = pg_config(ssh, tmp_path, postgres, *databases)
    repo = Repository.open(config.repository.path)
    return config, repo, await run_backup(config, repo, BackupRequest(), EventLog().emit)


def rows(postgres: PostgresServer, database: str, table: str) -> int:
    return int(postgres.psql(database, f"SELECT count(*) FROM {table}"))


WHOLE = RestoreOptions()


async def restore(
    config: Config, repo: Repository, manifest: Manifest, options: RestoreOptions = WHOLE
) -> None:
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",), options=options)
    report = await run_restore(config, repo, request, EventLog().emit)
    assert report.applied


async def test_a_dump_records_exact_rows_verifies_and_restores_whole(
    ssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(ssh_server, tmp_path, postgres, shop)
    (artifact,) = manifest.artifacts
    assert artifact.kind == "pg-dump"
    assert artifact.meta["tables"] == {
        shop: {"billing.invoices": 40, "public.empty_one": 0, "public.items": 300}
    }
    assert [f.path for f in artifact.files] == [f"db.{shop}.dump", "db.globals.sql"]
    assert artifact.meta["server_version"].startswith(postgres.bin.parent.name)
    assert PASSWORD not in (repo.backup_dir(manifest.id) / "manifest.json").read_text()
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok

    postgres.psql(shop, "DELETE FROM billing.invoices; DELETE FROM items WHERE id > 5")
    postgres.psql(shop, "CREATE TABLE written_after (x int); INSERT INTO written_after VALUES (1)")
    await restore(config, repo, manifest)
    assert rows(postgres, shop, "items") == 300
    assert rows(postgres, shop, "billing.invoices") == 40
    assert postgres.psql(shop, "SELECT note FROM items WHERE id = 3") == "two\nlines"
    assert rows(postgres, shop, "written_after") == 1  # not in the dump: left alone
    assert postgres.psql(shop, "SELECT nextval('items_id_seq')") == "301"
    entries = [e for e in audit.entries(repo.path) if e["action"] == "restore.postgres"]
    assert entries[-1]["database"] == shop
    assert sorted(entries[-1]["tables"]) == ["billing.invoices", "public.empty_one", "public.items"]


async def test_table_globs_restore_those_tables_and_a_rename_another_database(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, postgres, shop)
    postgres.psql(
        shop, "DELETE FROM billing.invoices WHERE id > 10; DELETE FROM items WHERE id > 200"
    )

    await restore(config, repo, manifest, RestoreOptions(namespaces=(f"{shop}.billing.*",)))
    assert rows(postgres, shop, "billing.invoices") == 40
    assert rows(postgres, shop, "items") == 200  # not selected: untouched

    copy = f"{shop}_copy"
    renamed = RestoreOptions(ns_from=shop, ns_to=copy)
    await restore(config, repo, manifest, renamed)
    assert rows(postgres, copy, "items") == 300
    assert rows(postgres, shop, "items") == 200
    created = [e for e in audit.entries(repo.path) if e["action"] == "restore.postgres-createdb"]
    assert [e["database"] for e in created] == [copy]


async def test_a_damaged_dump_fails_verify_and_a_restore_is_refused(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, postgres, shop)
    stored = repo.backup_dir(manifest.id) / f"db.{shop}.dump"
    stored.write_bytes(stored.read_bytes()[:-20])
    result = await run_verify(repo, manifest.id, EventLog().emit)
    assert not result.ok
    said = [(p.path, p.problem) for p in result.problems]
    assert {path for path, _ in said} == {f"db.{shop}.dump"}
    assert any("the dump ends inside" in text and "(truncated)" in text for _, text in said)
    assert any(text.startswith("size is ") for _, text in said)
    with pytest.raises(RestoreRefusedError):
        await restore(config, repo, manifest)
    assert rows(postgres, shop, "items") == 300


async def test_a_wrong_password_is_one_message_without_the_secret(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    config = pg_config(asyncssh_server, tmp_path, postgres, shop, password_file=str(wrong))
    repo = Repository.open(config.repository.path)
    log = EventLog()
    with pytest.raises(JobFailedError) as failed:
        await run_backup(config, repo, BackupRequest(), log.emit)
    (error,) = failed.value.errors
    assert "refused the password; fix sources.db.password_file" in error.error
    assert "not-the-password" not in repr(list(log))

    down = pg_config(asyncssh_server, tmp_path, postgres, shop)
    down = down.model_copy(
        update={"sources": {"db": down.sources["db"].model_copy(update={"port": free_port()})}}
    )
    with pytest.raises(JobFailedError) as failed:
        await run_backup(down, repo, BackupRequest(), EventLog().emit)
    (error,) = failed.value.errors
    assert "does not answer; is the server running there?" in error.error


async def test_the_validator_explains_the_clean_and_refuses_an_older_server_or_missing_roles(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, postgres, shop)
    options = RestoreOptions(namespaces=(f"{shop}.public.items",))
    report = await run_restore(
        config, repo, RestoreRequest(manifest.id, options=options), EventLog().emit
    )
    by_name = {c.name: c for c in report.checks}
    assert by_name["version h1"].status == "ok"
    planned = by_name[f"database {shop}"]
    assert planned.status == "ok"
    assert planned.detail == "on h1: exists; 1 table(s) restored: public.items"
    assert "dropped and recreated" in report.plan.effect(report.plan.steps[0])

    # As if dumped from PostgreSQL 99, and owned by a role this server lacks.
    path = repo.backup_dir(manifest.id) / "manifest.json"
    written = json.loads(path.read_text())
    meta = written["artifacts"][0]["meta"]
    meta["server_version"] = "99.1"
    meta["owners"][shop] = ["app_owner", "postgres"]
    path.write_text(json.dumps(written))
    with pytest.raises(RestoreRefusedError) as refused:
        await run_restore(config, repo, RestoreRequest(manifest.id), EventLog().emit)
    failed = {c.name: c.detail for c in refused.value.report.failed}
    assert failed["version h1"].endswith("restore onto PostgreSQL 99 or newer")
    assert failed[f"database {shop}"].startswith(
        "the dump's objects belong to role(s) app_owner, which h1 lacks: create them first"
    )


async def test_a_drill_drops_the_database_restores_it_and_finds_every_marker(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config = pg_config(asyncssh_server, tmp_path, postgres, shop, drill=True)
    repo = Repository.open(config.repository.path)
    plan = plan_drill(config, DrillRequest())
    assert plan.destroys == (
        "db on h1: every database it backs up is dropped (DROP DATABASE ... WITH (FORCE)), then "
        "created and restored",
    )
    record = await run_drill(config, repo, DrillRequest(confirm=("h1",)), EventLog().emit)
    assert record.problems == []
    assert record.passed
    assert [(m["found"], m["expected"]) for m in record.markers] == [(100, 100)]
    assert rows(postgres, shop, "items") == 300
    tables = postgres.psql(
        shop, "SELECT count(*) FROM pg_tables WHERE tablename = 'lifeboat_drill'"
    )
    assert tables == "0"  # the markers are gone again


async def test_checklist_items_count_rows_against_the_backup_and_run_read_only_queries(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, postgres, shop)
    postgres.psql(shop, "DELETE FROM billing.invoices WHERE id > 30")
    items = [
        item("pg_count", "items", source="db", database=shop, table="items"),
        item("pg_count", "invoices", source="db", database=shop, table="billing.invoices"),
        item("pg_count", "some", source="db", database=shop, table="billing.invoices", min=5),
        item(
            "pg_query",
            "total",
            source="db",
            database=shop,
            sql="SELECT sum(total) FROM billing.invoices",
            expect="697.5",
        ),
        item(
            "pg_query", "writes", source="db", database=shop, sql="DELETE FROM items RETURNING id"
        ),
    ]
    checklist = write_checklist(tmp_path, "after-pg", *items)
    with_checklist = config.model_copy(
        update={"checklists": config.checklists.model_copy(update={"paths": (checklist,)})}
    )
    loaded = checklists_for(with_checklist)["after-pg"]
    session = ChecklistSession.start(with_checklist, repo, loaded, manifest, {"sources": ["db"]})
    await session.check()
    by_id = {state.id: state for state in session.run.items}
    assert (by_id["items"].status, by_id["items"].detail) == (
        "passed",
        f"{shop}.public.items: 300 rows (backup: 300)",
    )
    assert (by_id["invoices"].status, by_id["invoices"].detail) == (
        "failed",
        f"{shop}.billing.invoices: 30 rows (backup: 40)",
    )
    assert by_id["some"].status == "passed"
    assert (by_id["total"].status, by_id["total"].detail) == (
        "passed",
        f"{shop}: the query returned '697.5' (expected '697.5')",
    )
    assert by_id["writes"].status == "failed"
    assert "read-only transaction" in by_id["writes"].detail
    assert rows(postgres, shop, "items") == 300


async def test_a_table_restore_from_the_cli_and_from_the_wizard_at_80x24(
    asyncssh_server: SSHTestServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    shop = seeded(postgres)
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, postgres, shop)
    config_file = write_config(
        tmp_path / "c.toml", pg_config_text(asyncssh_server, tmp_path, postgres, shop)
    )
    postgres.psql(shop, "DROP TABLE billing.invoices")
    ran = await lifeboat(
        "restore", manifest.id, "--ns", f"{shop}.billing.*", "--apply", "--confirm", "h1",
        "--skip-safety-backup", "--reason", "test", config=config_file,
    )  # fmt: skip
    assert ran.rc == 0, ran.stderr
    assert rows(postgres, shop, "billing.invoices") == 40

    postgres.psql(shop, "DELETE FROM items WHERE id > 100")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "pg-tables")
        assert "database.schema.table" in flat(shown(wizard, "#question-text"))
        await answer(pilot, wizard, f"{shop}.public.items")
        assert wizard.state.step is Step.PLAN
        assert "Selective PostgreSQL restore" in shown(wizard, "#plan-text")
        await pilot.press("ctrl+n", "enter")  # the plan, the backup
        await run_checks(app, pilot, wizard)
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        await pilot.press("enter")
        assert wizard.state.step is Step.CONFIRM
        assert "dropped and recreated" in flat(shown(wizard, "#confirm-text"))
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        assert f"Namespaces: {shop}.public.items" in flat(shown(wizard, "#done-text"))
    assert rows(postgres, shop, "items") == 300
