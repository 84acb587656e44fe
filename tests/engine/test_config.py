"""Config parsing, validation messages and discovery (engine.config, engine.paths)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from cli_run import lifeboat

from engine import paths
from engine.config.load import discover_config_path, load_config, parse_config
from engine.config.model import SOURCE_KINDS, Config, HostConfig
from engine.config.sources import (
    CommandSourceConfig,
    EtcdSourceConfig,
    FilesSourceConfig,
    MongoSourceConfig,
    PostgresSourceConfig,
    RedisSourceConfig,
)
from engine.durations import format_duration, parse_duration
from engine.errors import ConfigError
from engine.repo.repository import Repository

REPOSITORY = '[repository]\npath = "/var/backups/lifeboat"\n'
HOST = '[hosts.db1]\naddress = "10.0.0.5"\n'
FULL = """
operator = "alice"

[repository]
path = "~/backups"

[hosts.db1]
address = "10.0.0.5"

[hosts.web-1]
address = "web.example"
port = 2222
user = "backup"
identity = "~/.ssh/id_ed25519"
known_hosts = "/etc/ssh/ssh_known_hosts"
trust_on_first_use = true
connect_timeout = 2.5
keepalive_interval = 30

[sources.config]
kind = "files"
host = "db1"
paths = ["/etc/prexorcloud", "~/certs"]

[sources.pg]
kind = "command"
host = "web-1"
backup = ["pg_dump", "-Fc", "app"]
restore = ["pg_restore", "--clean", "-d", "app"]
"""


def problems_of(text: str) -> list[str]:
    """The problem lines ``parse_config`` reports for ``text`` (it must fail)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == "\n".join(info.value.problems)
    assert all("\n" not in line for line in info.value.problems)
    return info.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- a valid file -------------------------------------------------------------------------


def test_full_example_parses_with_paths_expanded() -> None:
    config = parse_config(FULL)
    home = Path.home()
    assert config.operator == "alice"
    assert config.repository.path == home / "backups"
    assert config.path is None
    web = config.hosts["web-1"]
    assert web == HostConfig(
        address="web.example",
        port=2222,
        user="backup",
        identity=home / ".ssh" / "id_ed25519",
        known_hosts=Path("/etc/ssh/ssh_known_hosts"),
        trust_on_first_use=True,
        connect_timeout=2.5,
        keepalive_interval=30.0,
    )
    files = config.sources["config"]
    assert isinstance(files, FilesSourceConfig)
    assert files.paths == (Path("/etc/prexorcloud"), home / "certs")
    pg = config.sources["pg"]
    assert isinstance(pg, CommandSourceConfig)
    assert pg.backup == ("pg_dump", "-Fc", "app")
    assert pg.restore == ("pg_restore", "--clean", "-d", "app")
    assert config.hosts[pg.host] is web


def test_the_operator_is_lifeboat_operator_then_the_files_then_the_login_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without = FULL.replace('operator = "alice"', "")
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "carol")
    assert parse_config(FULL).operator == "carol"  # over the file's
    assert parse_config(without).operator == "carol"
    bad = only_problem(FULL.replace('operator = "alice"', "operator = 3"))
    assert bad.startswith("operator: must be a non-empty string, got 3")  # still a mistake
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "  ")  # blank is not set
    assert parse_config(FULL).operator == "alice"
    monkeypatch.delenv("LIFEBOAT_OPERATOR")
    assert parse_config(FULL).operator == "alice"
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert parse_config(without).operator == paths.login_name()
    # The operators' console runs as the service user through sudo: the person is SUDO_USER,
    # while hosts still default to the process's own login for SSH.
    monkeypatch.setenv("SUDO_USER", "dave")
    config = parse_config(without)
    assert config.operator == "dave"
    assert config.hosts["db1"].user == paths.login_name() != "dave"


def test_defaults_are_filled_in() -> None:
    config = parse_config(FULL.replace('operator = "alice"', ""))
    assert config.operator == paths.login_name()
    db1 = config.hosts["db1"]
    assert db1.port == 22
    assert db1.user == paths.login_name()
    assert db1.identity is None
    assert db1.known_hosts == paths.default_known_hosts()
    assert db1.trust_on_first_use is False
    assert db1.connect_timeout > 0
    assert db1.keepalive_interval > 0
    restore_less = parse_config(
        REPOSITORY + HOST + '[sources.s]\nkind="command"\nhost="db1"\nbackup=["tar", "c", "/x"]\n'
    )
    assert restore_less.sources["s"].restore is None  # type: ignore[union-attr]


def test_minimal_file_has_no_hosts_or_sources() -> None:
    config = parse_config(REPOSITORY)
    assert config.hosts == {}
    assert config.sources == {}


def test_models_are_frozen() -> None:
    config = parse_config(FULL)
    with pytest.raises(ValueError, match="frozen"):
        config.operator = "mallory"  # type: ignore[misc]


def test_every_source_kind_is_registered() -> None:
    assert {
        "files": FilesSourceConfig,
        "command": CommandSourceConfig,
        "etcd": EtcdSourceConfig,
        "mongo": MongoSourceConfig,
        "redis": RedisSourceConfig,
        "postgres": PostgresSourceConfig,
    } == SOURCE_KINDS


def test_every_field_is_documented() -> None:
    models = [Config, HostConfig, *SOURCE_KINDS.values()]
    for model in models:
        documented = set().union(*(field_docstrings(cls) for cls in model.__mro__))
        for name in model.model_fields:
            assert name in documented, f"{model.__name__}.{name} has no docstring"


def field_docstrings(cls: type) -> set[str]:
    """The fields of ``cls``'s own body followed by a string (an attribute docstring). Read from
    the source, not by pydantic at import time: that costs every command ~0.1 s of start-up."""
    if cls.__module__ in ("builtins", "pydantic.main"):
        return set()
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    return {
        statement.target.id
        for statement, following in zip(body.body, body.body[1:], strict=False)
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    }


def test_load_config_records_where_it_came_from(tmp_path: Path) -> None:
    file = tmp_path / "lifeboat.toml"
    file.write_text(FULL, encoding="utf-8")
    config = load_config(file)
    assert config.path == file
    assert config.hosts["db1"].address == "10.0.0.5"


def test_load_config_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{tmp_path / 'absent.toml'}: cannot read")


# --- one mistake at a time ----------------------------------------------------------------


def test_empty_command() -> None:
    line = only_problem(REPOSITORY + HOST + '[sources.pg]\nkind="command"\nhost="db1"\nbackup=[]\n')
    assert line == 'sources.pg.backup: must not be empty; e.g. backup = ["pg_dump", "-Fc", "app"]'


def test_empty_argument_in_command() -> None:
    text = REPOSITORY + HOST + '[sources.pg]\nkind="command"\nhost="db1"\nbackup=["pg_dump", ""]\n'
    assert only_problem(text).startswith("sources.pg.backup[1]: must not be empty")


def test_command_as_a_string() -> None:
    text = REPOSITORY + HOST + '[sources.pg]\nkind="command"\nhost="db1"\nbackup="pg_dump app"\n'
    assert only_problem(text).startswith('sources.pg.backup: must be a list, got "pg_dump app"')


def test_empty_restore() -> None:
    text = (
        REPOSITORY + HOST + '[sources.pg]\nkind="command"\nhost="db1"\nbackup=["a"]\nrestore=[]\n'
    )
    assert only_problem(text).startswith("sources.pg.restore: must not be empty; e.g. restore = [")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "hosts.db1.port: must be a positive number, got 0"),
        ("-5", "hosts.db1.port: must be a positive number, got -5"),
        ("70000", "hosts.db1.port: must be at most 65535, got 70000"),
        ('"abc"', 'hosts.db1.port: must be an integer, got "abc"'),
        ('"22"', 'hosts.db1.port: must be an integer, got "22"'),
        ("22.0", "hosts.db1.port: must be an integer, got 22.0"),
        ("true", "hosts.db1.port: must be an integer, got true"),
    ],
)
def test_bad_port(value: str, expected: str) -> None:
    assert only_problem(REPOSITORY + HOST + f"port = {value}\n") == f"{expected}; e.g. port = 22"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("connect_timeout = 0", "hosts.db1.connect_timeout: must be a positive number, got 0"),
        ("connect_timeout = inf", "hosts.db1.connect_timeout: must be a finite number, got inf"),
        ('keepalive_interval = "1m"', 'hosts.db1.keepalive_interval: must be a number, got "1m"'),
        ('trust_on_first_use = "yes"', "hosts.db1.trust_on_first_use: must be true or false, got"),
        ('user = ""', 'hosts.db1.user: must not be empty; e.g. user = "backup"'),
    ],
)
def test_bad_host_values(line: str, expected: str) -> None:
    assert only_problem(REPOSITORY + HOST + line + "\n").startswith(expected)


def test_unknown_host() -> None:
    text = REPOSITORY + HOST + '[sources.config]\nkind="files"\nhost="db9"\npaths=["/etc"]\n'
    assert only_problem(text) == (
        'sources.config.host: unknown host "db9"; define [hosts.db9] or use one of: db1'
    )


def test_unknown_host_when_no_hosts_are_defined() -> None:
    text = REPOSITORY + '[sources.config]\nkind="files"\nhost="db9"\npaths=["/etc"]\n'
    assert only_problem(text) == 'sources.config.host: unknown host "db9"; define [hosts.db9]'


def test_unknown_kind() -> None:
    text = REPOSITORY + HOST + '[sources.x]\nkind="ftp"\nhost="db1"\n'
    assert only_problem(text) == (
        'sources.x.kind: unknown kind "ftp"; valid kinds: command, etcd, files, mongo, postgres, '
        "redis"
    )


def test_missing_kind() -> None:
    text = REPOSITORY + HOST + '[sources.x]\nhost="db1"\npaths=["/etc"]\n'
    assert only_problem(text) == (
        'sources.x.kind: missing; set kind = "command" or "etcd" or "files" or "mongo" or '
        '"postgres" or "redis"'
    )


def test_unknown_host_key_lists_valid_keys() -> None:
    line = only_problem(REPOSITORY + HOST + 'colour = "red"\n')
    assert line.startswith("hosts.db1.colour: unknown key; valid keys: address, port, user, ")
    assert "keepalive_interval" in line


def test_misspelt_key_suggests_the_right_one() -> None:
    line = only_problem(REPOSITORY + '[hosts.db1]\nadress = "10.0.0.5"\naddress = "x"\n')
    assert line.startswith("hosts.db1.adress: unknown key; did you mean address? valid keys:")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("colour = 1\n" + REPOSITORY, "colour"),
        ('path = "/x"\n' + REPOSITORY, "path"),  # Config.path is not a TOML key
        (REPOSITORY + "mode = 1\n", "repository.mode"),
        (
            REPOSITORY + '[sources.s]\nkind="files"\nhost="h"\npaths=["/x"]\nuser="u"\n'
            '[hosts.h]\naddress="a"\n',
            "sources.s.user",
        ),
        (REPOSITORY + HOST + "[hosts.db1.extra]\nx = 1\n", "hosts.db1.extra"),
    ],
)
def test_unknown_keys_at_every_level(text: str, where: str) -> None:
    assert only_problem(text).startswith(f"{where}: unknown key; ")


def test_unknown_source_key_lists_that_kinds_keys() -> None:
    text = REPOSITORY + HOST + '[sources.s]\nkind="files"\nhost="db1"\npaths=["/x"]\nbackup=["a"]\n'
    expected = "sources.s.backup: unknown key; valid keys: drill, kind, host, paths, allow_setid"
    assert only_problem(text) == expected


def test_relative_repository_path() -> None:
    assert only_problem('[repository]\npath = "backups"\n') == (
        'repository.path: must be an absolute path, got "backups"; '
        'write the full path, e.g. "/var/backups/lifeboat"'
    )


@pytest.mark.parametrize("key", ["identity", "known_hosts"])
def test_relative_host_paths(key: str) -> None:
    line = only_problem(REPOSITORY + HOST + f'{key} = "keys/id"\n')
    assert line.startswith(f'hosts.db1.{key}: must be an absolute path, got "keys/id"; ')


def test_relative_source_path_names_its_index() -> None:
    text = REPOSITORY + HOST + '[sources.c]\nkind="files"\nhost="db1"\npaths=["/etc", "etc/x"]\n'
    assert only_problem(text).startswith(
        'sources.c.paths[1]: must be an absolute path, got "etc/x"; write the full path, e.g. "/'
    )


def test_duplicate_paths() -> None:
    text = (
        REPOSITORY
        + HOST
        + '[sources.config]\nkind="files"\nhost="db1"\n'
        + 'paths=["/etc/x", "/etc/x", "/srv", "~/a", "~/a"]\n'
    )
    assert problems_of(text) == [
        'sources.config.paths[1]: duplicate path "/etc/x" (already sources.config.paths[0]); '
        "list each path once",
        f'sources.config.paths[4]: duplicate path "{Path.home() / "a"}" '
        "(already sources.config.paths[3]); list each path once",
    ]


def test_empty_paths() -> None:
    text = REPOSITORY + HOST + '[sources.config]\nkind="files"\nhost="db1"\npaths=[]\n'
    assert only_problem(text).startswith("sources.config.paths: must not be empty; e.g. paths = [")


def test_missing_repository_path() -> None:
    assert only_problem(HOST) == (
        'repository.path: missing; add path = "/var/backups/lifeboat" under [repository]'
    )


@pytest.mark.parametrize("label", ["production", "staging-eu", "demo", "DR site 2", "v1.4"])
def test_an_environment_label_is_kept(label: str) -> None:
    assert parse_config(f'environment = "{label}"\n' + REPOSITORY).environment == label


@pytest.mark.parametrize("value", ["5", '""', '" prod"', '"prod\\n"', f'"{"x" * 25}"', "[1]"])
def test_a_bad_environment_label_is_one_problem(value: str) -> None:
    line = only_problem(f"environment = {value}\n" + REPOSITORY)
    assert line.startswith("environment: must be a short label (24 characters at most")
    assert line.endswith('; e.g. environment = "production"')


def test_missing_host_address() -> None:
    assert only_problem(REPOSITORY + "[hosts.db1]\nport = 22\n") == (
        'hosts.db1.address: missing; add address = "10.0.0.5" under [hosts.db1]'
    )


def test_missing_source_keys_are_each_reported() -> None:
    problems = problems_of(REPOSITORY + '[sources.pg]\nkind="command"\n')
    assert [line.split(":")[0] for line in problems] == ["sources.pg.host", "sources.pg.backup"]
    assert all(": missing; add " in line for line in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository = 3\n", "repository: must be a table, got 3"),
        ("hosts = 5\n" + REPOSITORY, "hosts: must be a table, got 5"),
        (REPOSITORY + '[hosts]\naddress = "x"\n', 'hosts.address: must be a table, got "x"'),
        ('sources = ["a"]\n' + REPOSITORY, 'sources: must be a table, got ["a"]'),
        (REPOSITORY + "[hosts.db1]\naddress = 10\n", "hosts.db1.address: must be a string, got 10"),
        ("operator = 5\n" + REPOSITORY, "operator: must be a non-empty string, got 5"),
        ('operator = ""\n' + REPOSITORY, 'operator: must be a non-empty string, got ""'),
        ("[repository]\npath = 5\n", "repository.path: must be a path (a string), got 5"),
    ],
)
def test_wrong_types(text: str, expected: str) -> None:
    assert only_problem(text).startswith(expected + "; ")


@pytest.mark.parametrize(
    ("name", "key"),
    [("db 1", '"db 1"'), ("-db", "-db"), (".hidden", '".hidden"'), ("db/1", '"db/1"'), ("", '""')],
)
def test_bad_host_names(name: str, key: str) -> None:
    line = only_problem(REPOSITORY + f'[hosts."{name}"]\naddress = "a"\n')
    assert line.startswith(f'hosts.{key}: invalid name "{name}"; use letters, digits')


def test_dotted_names_are_allowed() -> None:
    text = REPOSITORY + '[hosts."db1.example"]\naddress = "a"\n'
    text += '[sources."db1.etc"]\nkind="files"\nhost="db1.example"\npaths=["/etc"]\n'
    config = parse_config(text)
    assert config.hosts[config.sources["db1.etc"].host].address == "a"


def test_bad_source_name() -> None:
    text = REPOSITORY + HOST + '[sources."my source"]\nkind="files"\nhost="db1"\npaths=["/x"]\n'
    assert only_problem(text).startswith('sources."my source": invalid name "my source"; ')


def test_names_differing_only_in_case_collide() -> None:
    text = REPOSITORY + HOST + '[hosts.DB1]\naddress = "b"\n'
    assert only_problem(text) == (
        "hosts.DB1: same name as hosts.db1 apart from case; rename one (names become file names)"
    )


def test_duplicate_table_is_a_syntax_error_with_its_line() -> None:
    text = REPOSITORY + HOST + "[hosts.db1]\nport = 2\n"
    assert problems_of(text) == [
        "<string>: line 5, column 11: Cannot declare [hosts.db1] twice; fix the TOML syntax"
    ]


def test_duplicate_key_is_a_syntax_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(REPOSITORY + HOST + 'address = "b"\n', source="lifeboat.toml")
    assert info.value.problems == [
        "lifeboat.toml: line 5, column 14: Cannot overwrite a value; fix the TOML syntax"
    ]


def test_unterminated_string_is_a_syntax_error() -> None:
    assert only_problem('[repository]\npath = "/x').startswith(
        "<string>: end of file: Unterminated string; "
    )


# --- many mistakes at once ----------------------------------------------------------------


def test_three_mistakes_give_three_lines() -> None:
    text = (
        '[repository]\npath = "backups"\n'
        '[hosts.db1]\naddress = "10.0.0.5"\nport = 0\n'
        '[sources.pg]\nkind = "command"\nhost = "db1"\nbackup = []\n'
    )
    problems = problems_of(text)
    assert [line.split(":")[0] for line in problems] == [
        "repository.path",
        "hosts.db1.port",
        "sources.pg.backup",
    ]


def test_all_mistakes_are_reported_together() -> None:
    text = """
        colour = "blue"
        [repository]
        [hosts.db1]
        address = "a"
        port = "x"
        [sources.a]
        kind = "tape"
        host = "db2"
        [sources.b]
        kind = "files"
        host = "db1"
        paths = ["rel"]
    """
    problems = problems_of(text)
    where = [line.split(":")[0] for line in problems]
    assert sorted(where) == sorted(
        [
            "colour",
            "repository.path",
            "hosts.db1.port",
            "sources.a.kind",
            "sources.a.host",
            "sources.b.paths[0]",
        ]
    )
    assert not any("pydantic" in line or "Input should" in line for line in problems)


# --- discovery ----------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A config file in each place discovery looks, with the user config dir patched."""
    found = {}
    for place in ("explicit", "env", "cwd", "user"):
        (tmp_path / place).mkdir()
        found[place] = tmp_path / place / ("lifeboat.toml" if place == "cwd" else "c.toml")
        found[place].write_text(REPOSITORY, encoding="utf-8")
    monkeypatch.setattr(paths, "user_config_file", lambda: found["user"])
    return found


def test_discovery_order(places: dict[str, Path]) -> None:
    env = {"LIFEBOAT_CONFIG": str(places["env"])}
    cwd = places["cwd"].parent
    assert discover_config_path(places["explicit"], env, cwd) == places["explicit"]
    assert discover_config_path(None, env, cwd) == places["env"]
    assert discover_config_path(None, {}, cwd) == places["cwd"]
    assert discover_config_path(None, {"LIFEBOAT_CONFIG": ""}, cwd) == places["cwd"]
    assert discover_config_path(None, {}, places["user"].parent.parent) == places["user"]


def test_relative_explicit_path_is_relative_to_cwd(places: dict[str, Path]) -> None:
    found = discover_config_path(Path("c.toml"), {}, places["explicit"].parent)
    assert found == places["explicit"]


def test_missing_explicit_file(places: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        discover_config_path(missing, {"LIFEBOAT_CONFIG": str(places["env"])}, tmp_path)
    assert info.value.problems == [
        f"--config: config file {missing} does not exist; "
        "fix the path, or leave out --config to search"
    ]


def test_missing_env_file(places: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        discover_config_path(None, {"LIFEBOAT_CONFIG": str(tmp_path / "nope.toml")}, tmp_path)
    (line,) = info.value.problems
    assert line.startswith(f"$LIFEBOAT_CONFIG: config file {tmp_path / 'nope.toml'} does not")
    assert line.endswith("unset LIFEBOAT_CONFIG")


def test_explicit_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        discover_config_path(tmp_path, {}, tmp_path)


def test_nothing_found_says_where_it_looked_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = tmp_path / "config" / "config.toml"
    monkeypatch.setattr(paths, "user_config_file", lambda: user_file)
    with pytest.raises(ConfigError) as info:
        discover_config_path(None, {}, tmp_path)
    (line,) = info.value.problems
    assert str(tmp_path / "lifeboat.toml") in line
    assert str(user_file) in line
    assert "LIFEBOAT_CONFIG" in line
    assert "lifeboat demo" in line


# --- paths --------------------------------------------------------------------------------


def test_default_paths() -> None:
    assert paths.user_config_file().name == "config.toml"
    assert "lifeboat" in paths.user_config_file().parts
    assert "lifeboat" in paths.user_data_dir().parts
    assert paths.default_known_hosts() == Path.home() / ".ssh" / "known_hosts"


def test_login_name_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise OSError("no user")

    monkeypatch.setattr(paths.getpass, "getuser", no_user)
    assert paths.login_name() == "unknown"


def test_tiers_parse_durations_and_check_their_sources() -> None:
    text = (
        REPOSITORY
        + HOST
        + '[sources.db]\nkind = "command"\nhost = "db1"\nbackup = ["x"]\n'
        + '[tiers.gold]\nrpo = "1h30m"\nrto = "15m"\nsources = ["db"]\n'
    )
    tier = parse_config(text).tiers["gold"]
    assert tier.rpo == timedelta(minutes=90)
    assert tier.rto == timedelta(minutes=15)
    assert tier.sources == ("db",)


def test_tier_mistakes_are_each_named() -> None:
    text = REPOSITORY + '[tiers.gold]\nrpo = "soon"\nrto = "0m"\nsources = ["zz"]\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.problems == [
        "tiers.gold.rpo: must be a duration like 15m, 24h, 1h30m or 7d, got 'soon'; "
        'e.g. rpo = "24h"',
        "tiers.gold.rto: must be longer than zero, got '0m'; e.g. rto = \"1h\"",
        'tiers.gold.sources: unknown source "zz"; configured sources: none are configured',
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("24h", 86400), ("1h30m", 5400), ("7d", 604800), ("1w", 604800)],
)
def test_durations_round_trip(text: str, seconds: int) -> None:
    value = parse_duration(text)
    assert value.total_seconds() == seconds
    assert parse_duration(format_duration(value).replace(" ", "")) == value


# --- hostile input: one message each, never a traceback -------------------------------------


def test_huge_durations_are_refused_by_name() -> None:
    text = (
        REPOSITORY
        + '[tiers.gold]\nrpo = "1000000000d"\nrto = "1h"\nsources = []\n'
        + '[retention]\nkeep_within = "99999999999h"\n'
        + '[schedules.n]\ncron = "@daily"\noverdue_after = "36501d"\n'
    )
    problems = problems_of(text)
    assert "tiers.gold.rpo: must be at most 36500d (100 years), got '1000000000d'" in problems[0]
    assert any(
        p.startswith("retention.keep_within: must be at most 36500d (100 years)") for p in problems
    )
    assert any(p.startswith("schedules.n.overdue_after: must be at most") for p in problems)
    assert parse_duration("36500d").days == 36500  # the longest allowed still parses


def test_huge_timeouts_are_refused_by_name() -> None:
    line = only_problem(REPOSITORY + '[hosts.db1]\naddress = "a"\nconnect_timeout = 1e300\n')
    expected = "must be at most 604800, got 1e+300; e.g. connect_timeout = 10"
    assert line == f"hosts.db1.connect_timeout: {expected}"


@pytest.mark.parametrize(
    "nested",
    ["x = " + "[" * 100_000 + "]" * 100_000, "x = " + "{a = " * 100_000 + "1" + "}" * 100_000],
    ids=["arrays", "inline-tables"],
)
def test_deep_nesting_is_one_problem_naming_the_file(nested: str) -> None:
    line = only_problem(REPOSITORY + nested + "\n")
    assert line.startswith("<string>: arrays or tables are nested too deeply")


def test_a_moderately_deep_value_is_shown_short() -> None:
    line = only_problem("operator = " + "[" * 200 + "]" * 200 + "\n" + REPOSITORY)
    assert line == 'operator: must be a non-empty string, got [[[...]]]; e.g. operator = "alice"'


def test_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    file = tmp_path / "lifeboat.toml"
    file.write_bytes(b"\xef\xbb\xbf" + REPOSITORY.encode())
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.problems == [
        f"{file}: starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without a BOM"
    ]


def test_a_nul_in_a_path_is_refused() -> None:
    line = only_problem('[repository]\npath = "/var/backups\\u0000x"\n')
    assert line.startswith("repository.path: must not contain a NUL character")


def test_repository_path_must_be_a_new_empty_or_lifeboat_directory(tmp_path: Path) -> None:
    file = tmp_path / "lifeboat.toml"
    fix = "point repository.path at a new or empty directory, or at a Lifeboat repository"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.db").write_text("someone else's")
    for path, problem in [
        (file, f"{file} exists and is not a directory; {fix}"),
        (foreign, f"{foreign} is not empty and is not a Lifeboat repository (no "
                  f"lifeboat-repo.json); {fix}"),
    ]:  # fmt: skip
        file.write_text(f'[repository]\npath = "{path}"\n')
        with pytest.raises(ConfigError) as info:
            load_config(file)
        assert info.value.problems == [f"repository.path: {problem}"]
    (tmp_path / "empty").mkdir()
    Repository.open(tmp_path / "repo")
    for fine in ("empty", "new", "repo"):
        file.write_text(f'[repository]\npath = "{tmp_path / fine}"\n')
        assert load_config(file).repository.path == tmp_path / fine


async def test_config_check_exits_2_with_one_message_for_each_hostile_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files = {
        "overflow": f'[repository]\npath = "{repo}"\n[retention]\nkeep_within = "99999999999h"\n',
        "deep": f'[repository]\npath = "{repo}"\nx = ' + "[" * 100_000 + "]" * 100_000,
        "bom": f'\ufeff[repository]\npath = "{repo}"\n',
        "file": f'[repository]\npath = "{tmp_path / "file.toml"}"\n',
    }
    expected = {
        "overflow": "retention.keep_within: must be at most 36500d",
        "deep": "deep.toml: arrays or tables are nested too deeply",
        "bom": "bom.toml: starts with a UTF-8 byte order mark (BOM)",
        "file": "repository.path: ",
    }
    runs = {}
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    for name in files:
        runs[name] = await lifeboat("config", "check", config=tmp_path / f"{name}.toml")
    for name, run in runs.items():
        assert run.rc == 2, (name, run.stderr)
        assert run.stderr.count("lifeboat: error: ") == 1, run.stderr
        assert expected[name] in run.stderr
        assert "Traceback" not in run.stderr


def test_an_unknown_top_level_key_is_named_as_written() -> None:
    line = only_problem('"operator y" = "alice"\n' + REPOSITORY)
    assert line.startswith('"operator y": unknown key; did you mean operator? valid keys: ')


def test_numbers_of_thousands_of_digits_are_one_problem() -> None:
    line = only_problem(REPOSITORY + "[drill]\nmarkers = " + "9" * 5000 + "\n")
    assert line == "<string>: a number is too long to read (thousands of digits); fix the value"
    line = only_problem(REPOSITORY + '[retention]\nkeep_within = "' + "9" * 5000 + 'd"\n')
    assert line.startswith("retention.keep_within: must be at most 36500d (100 years), got '999")
    assert len(line) < 200
    assert parse_duration("0000000000000001d").days == 1  # leading zeros are no length


def test_an_infinite_free_space_margin_is_refused() -> None:
    line = only_problem(REPOSITORY + "[restore]\nfree_space_margin = inf\n")
    assert line.startswith("restore.free_space_margin: must be a finite number, got inf")
