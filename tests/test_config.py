"""Tests of the config package: YAML -> JSON Schema -> frozen Config, every problem with file and path."""

from __future__ import annotations

import dataclasses
import hashlib
import textwrap
from pathlib import Path
from typing import Any

import pytest

from itsmd.config import Config, Secret, find_config, load_config, parse_duration
from itsmd.config.document import load_validator
from itsmd.config.loader import SCHEMA_NAME
from itsmd.config.model import (
    AlertmanagerTarget,
    Automation,
    Incidents,
    Ingest,
    Limits,
    Listen,
    Log,
    Retention,
    Sla,
    Storage,
)
from itsmd.config.sections import database_url
from itsmd.core.access import Role
from itsmd.errors import ConfigError

AM_TOKEN = "am-token-0123456789abcdef"
OPS_TOKEN = "ops-token-0123456789abcdef"
GRAFANA_SHA = hashlib.sha256(b"grafana-token-0123456789").hexdigest()

FULL_EXAMPLE = f"""
listen: 127.0.0.1:9797
tls: {{cert_file: tls/cert.pem, key_file: tls/key.pem}}
database: sqlite:///itsmd.db
rules: [rules/*.yaml]
services: services.yaml
playbooks: [playbooks/*.yaml]
alertmanagers: [{{url: http://127.0.0.1:9093, token_file: am.token}}]
auth:
  tokens:
    - {{name: alertmanager, role: ingest,   token_file: /ABS/am.token}}
    - {{name: ops,          role: operator, token_env: ITSMD_OPS_TOKEN}}
    - {{name: grafana,      role: viewer,   sha256: {GRAFANA_SHA}}}
notifiers:
  - {{name: oncall, type: pagerduty, routing_key_file: secrets/routing_key, default: true}}
  - {{name: ops-chat, type: slack, url_file: secrets/slack_url}}
  - {{name: hooks, type: webhook, url: https://hooks.example.org/itsmd, headers_file: secrets/headers}}
  - {{name: mail, type: email, smtp: smtp.example.org:587, from: itsmd@example.org, to: [ops@example.org]}}
automation: {{enabled: true, dry_run: false, max_concurrent_runs: 64, max_pages_per_hour: 30}}
incidents: {{close_after: 24h, stale_after: 9h}}
reports: {{timezone: UTC, sla: {{P1: {{ack: 5m, restore: 1h}}, P2: {{ack: 15m, restore: 4h}}}},
  weekly: {{cron: "0 8 * * MON", notifier: ops-chat}}}}
limits: {{max_body_bytes: 10485760, max_alerts_per_request: 10000}}
retention: {{alerts: 90d, incidents: 730d}}
ingest: {{resolve_timeout: 5m, pipeline_batch: 100}}
storage: {{sqlite_synchronous: FULL, pool_size: 4}}
log: {{format: logfmt, level: info}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_config(folder: Path, text: str) -> Path:
    return write(folder / "itsmd.yaml", textwrap.dedent(text))


def problems_of(path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {}, cwd or path.parent)
    return caught.value.problems


@pytest.fixture
def full_example(tmp_path: Path) -> Path:
    write(tmp_path / "am.token", AM_TOKEN + "\n")
    write(tmp_path / "tls" / "cert.pem", "cert")
    write(tmp_path / "tls" / "key.pem", "key")
    write(tmp_path / "secrets" / "routing_key", "R0UTING-KEY\n")
    write(tmp_path / "secrets" / "slack_url", "https://hooks.slack.com/services/T/B/SECRET\n")
    write(tmp_path / "secrets" / "headers", "# for the receiver\nAuthorization: Bearer HDR-SECRET\n\nX-Team: ops\n")
    return write_config(tmp_path, FULL_EXAMPLE.replace("/ABS", str(tmp_path)))


# --- defaults and finding the file ---------------------------------------------------------------------------


def test_no_config_file_gives_the_defaults_relative_to_cwd(tmp_path: Path) -> None:
    config = load_config(None, {}, tmp_path)

    assert config == Config.default(tmp_path)
    assert config.path is None
    assert str(config.listen) == "127.0.0.1:9797"
    assert config.database == f"sqlite:///{tmp_path}/itsmd.db"
    assert config.rules == (f"{tmp_path}/rules/*.yaml",)
    assert config.playbooks == (f"{tmp_path}/playbooks/*.yaml",)
    assert config.auth is None and config.tls is None and config.services is None
    assert config.alertmanagers == () and config.notifiers == ()
    assert config.automation == Automation(True, False, 64, 30)
    assert config.incidents == Incidents(close_after=86400.0, stale_after=32400.0)
    assert config.limits == Limits(max_body_bytes=10485760, max_alerts_per_request=10000)
    assert config.retention == Retention(alerts=90 * 86400.0, incidents=730 * 86400.0)
    assert config.ingest == Ingest(resolve_timeout=300.0, pipeline_batch=100)
    assert config.storage == Storage(sqlite_synchronous="FULL", pool_size=4)
    assert config.log == Log(format="logfmt", level="info")
    assert config.reports.timezone == "UTC"
    assert dict(config.reports.sla) == {"P1": Sla(300.0, 3600.0), "P2": Sla(900.0, 14400.0)}


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "itsmd.yaml", "# nothing yet\n")

    assert load_config(path, {}, tmp_path) == dataclasses.replace(Config.default(tmp_path), path=path)


def test_find_config_prefers_the_argument_then_cwd(tmp_path: Path) -> None:
    assert find_config(None, tmp_path) is None
    write(tmp_path / "itsmd.yaml", "")
    assert find_config(None, tmp_path) == tmp_path / "itsmd.yaml"
    assert find_config("other.yaml", tmp_path) == Path("other.yaml")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = Config.default(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.database = "sqlite://"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.reports.sla["P3"] = Sla()  # type: ignore[index]


# --- the full example of DESIGN §1.2 -------------------------------------------------------------------------


def test_full_example_loads(full_example: Path, tmp_path: Path) -> None:
    config = load_config(full_example, {"ITSMD_OPS_TOKEN": OPS_TOKEN}, tmp_path)

    assert config.path == full_example and config.base_dir == tmp_path
    assert config.listen == Listen(host="127.0.0.1", port=9797)
    assert config.tls is not None and config.tls.key_file == tmp_path / "tls" / "key.pem"
    assert config.services == tmp_path / "services.yaml"
    assert config.alertmanagers == (AlertmanagerTarget(url="http://127.0.0.1:9093", token=Secret(AM_TOKEN)),)
    assert config.auth is not None
    assert [(t.name, t.role, t.sha256) for t in config.auth.tokens] == [
        ("alertmanager", Role.INGEST, hashlib.sha256(AM_TOKEN.encode()).digest()),
        ("ops", Role.OPERATOR, hashlib.sha256(OPS_TOKEN.encode()).digest()),
        ("grafana", Role.VIEWER, bytes.fromhex(GRAFANA_SHA)),
    ]
    oncall, chat, hooks, mail = config.notifiers
    assert (oncall.name, oncall.type, oncall.default) == ("oncall", "pagerduty", True)
    assert oncall.settings["routing_key"] == Secret("R0UTING-KEY")
    assert chat.settings["url"] == Secret("https://hooks.slack.com/services/T/B/SECRET")
    assert not chat.default
    assert hooks.settings["url"] == Secret("https://hooks.example.org/itsmd")
    assert hooks.settings["headers"] == {"Authorization": Secret("Bearer HDR-SECRET"), "X-Team": Secret("ops")}
    assert dict(mail.settings) == {
        "smtp": "smtp.example.org:587",
        "from": "itsmd@example.org",
        "to": ("ops@example.org",),
    }
    assert config.incidents == Incidents(close_after=86400.0, stale_after=32400.0)
    assert config.reports.weekly_cron == "0 8 * * MON" and config.reports.weekly_notifier == "ops-chat"
    assert config.retention == Retention(alerts=7776000.0, incidents=63072000.0)


def test_sla_given_replaces_the_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, "reports: {timezone: Europe/Berlin, sla: {P3: {ack: 1h}}}")

    reports = load_config(path, {}, tmp_path).reports

    assert reports.timezone == "Europe/Berlin"
    assert dict(reports.sla) == {"P3": Sla(ack=3600.0, restore=None)}


def test_integral_numbers_become_ints(tmp_path: Path) -> None:
    path = write_config(tmp_path, "storage: {pool_size: 8.0}\nincidents: {close_after: 90}")

    config = load_config(path, {}, tmp_path)

    assert config.storage.pool_size == 8 and isinstance(config.storage.pool_size, int)
    assert config.incidents.close_after == 90.0


# --- problems --------------------------------------------------------------------------------------------------


def test_every_problem_is_reported_with_file_and_path(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        listen: 127.0.0.1:99999
        database: mysql://db
        surprise: 1
        auth:
          tokens:
            - {name: am, role: root, token_file: am.token}
            - {name: ops, role: admin}
            - {name: ops2, role: admin, token_env: A, sha256: abc}
            - {name: ci, role: admin, token_env: UNSET_TOKEN}
        notifiers:
          - {name: pager, type: sms}
          - {name: chat, type: slack, url: https://hooks.slack.com/x}
        incidents: {close_after: 5x}
        reports: {timezone: Mars/Olympus, weekly: {cron: "0 8 * *"}}
        log: {level: loud}
        """,
    )

    assert problems_of(path) == [
        f"{path}: (root): unknown key 'surprise'",
        f"{path}: auth.tokens[0].role: must be one of ingest, viewer, operator or admin; got 'root'",
        f"{path}: auth.tokens[1]: needs one of token_file, token_env or sha256",
        f"{path}: auth.tokens[2]: give only one of token_file, token_env or sha256, not token_env and sha256",
        f"{path}: auth.tokens[2].sha256: must be 64 hex digits: the SHA-256 of a high-entropy token",
        f"{path}: auth.tokens[3].token_env: environment variable UNSET_TOKEN is not set",
        f"{path}: database: must be a sqlite:///FILE or postgresql://user@host/db URL",
        f"{path}: incidents.close_after: must be a duration like 30s, 5m, 1h30m, 7d "
        "(units w d h m s ms, largest first) or a number of seconds >= 0",
        f"{path}: listen: invalid port '99999'; use 1-65535 (0 picks a free port)",
        f"{path}: log.level: must be one of debug, info, warning or error; got 'loud'",
        f"{path}: notifiers[0].type: must be one of pagerduty, slack, webhook or email; got 'sms'",
        f"{path}: notifiers[1]: unknown key 'url'",
        f"{path}: notifiers[1]: needs one of url_file or url_env",
        f"{path}: reports.timezone: unknown time zone 'Mars/Olympus'; use an IANA name like UTC or Europe/Berlin",
        f"{path}: reports.weekly.cron: cron needs 5 fields (minute hour day month weekday); got 4",
    ]


def test_file_is_shown_as_given(tmp_path: Path) -> None:
    write_config(tmp_path / "etc", "log: {format: xml}")

    assert problems_of(Path("etc/itsmd.yaml"), cwd=tmp_path) == [
        "etc/itsmd.yaml: log.format: must be one of logfmt or json; got 'xml'"
    ]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "itsmd.yaml", "listen: 127.0.0.1:9797\nauth: {tokens: [\n")

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}: (root): invalid YAML at line 3, column 1: ")


def test_missing_config_file_is_a_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [
        f"{tmp_path}/nope.yaml: (root): cannot read {tmp_path}/nope.yaml: No such file or directory"
    ]


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "itsmd.yaml", "- listen\n")

    assert problems_of(path) == [f"{path}: (root): expected object, got array"]


def test_token_sources_must_be_usable(tmp_path: Path) -> None:
    write(tmp_path / "short.token", "tiny\n")
    write(tmp_path / "empty.token", "\n")
    write(tmp_path / "good.token", AM_TOKEN)
    path = write_config(
        tmp_path,
        """\
        auth:
          tokens:
            - {name: a, role: admin, token_file: missing.token}
            - {name: b, role: admin, token_file: short.token}
            - {name: c, role: admin, token_file: empty.token}
            - {name: d, role: admin, token_env: EMPTY_TOKEN}
            - {name: e, role: admin, token_file: good.token}
            - {name: e, role: viewer, token_env: SAME_TOKEN}
        """,
    )

    problems = problems_of(path, {"EMPTY_TOKEN": "", "SAME_TOKEN": AM_TOKEN})

    assert problems == [
        f"{path}: auth.tokens[0].token_file: cannot read {tmp_path}/missing.token: No such file or directory",
        f"{path}: auth.tokens[1].token_file: token too short; use at least 16 random characters",
        f"{path}: auth.tokens[2].token_file: {tmp_path}/empty.token is empty",
        f"{path}: auth.tokens[3].token_env: environment variable EMPTY_TOKEN is empty",
        f"{path}: auth.tokens[5]: same token as auth.tokens[4]; give each client its own",
        f"{path}: auth.tokens[5].name: duplicate token name 'e' (also auth.tokens[4])",
    ]
    assert not any("tiny" in p or AM_TOKEN in p for p in problems)


def test_notifier_secrets_and_references_are_checked(tmp_path: Path) -> None:
    write(tmp_path / "headers", "Authorization Bearer oops\n")
    path = write_config(
        tmp_path,
        """\
        notifiers:
          - {name: pd, type: pagerduty, routing_key_env: PD_KEY}
          - {name: pd, type: webhook, url_file: nowhere, headers_file: headers}
        reports: {weekly: {cron: "0 8 * * MON", notifier: ghost}}
        """,
    )

    assert problems_of(path) == [
        f"{path}: notifiers[0].routing_key_env: environment variable PD_KEY is not set",
        f"{path}: notifiers[1].headers_file: line 1: expected 'Name: value'",
        f"{path}: notifiers[1].name: duplicate notifier name 'pd' (also notifiers[0])",
        f"{path}: notifiers[1].url_file: cannot read {tmp_path}/nowhere: No such file or directory",
        f"{path}: reports.weekly.notifier: unknown notifier 'ghost'",
    ]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * *", "cron needs 5 fields (minute hour day month weekday); got 6"),
        ("99 8 * * MON", "invalid cron expression: "),
        ("0 8 * * FUNDAY", "invalid cron expression: "),
    ],
)
def test_cron_is_checked(tmp_path: Path, cron: str, message: str) -> None:
    path = write_config(tmp_path, f'reports: {{weekly: {{cron: "{cron}"}}}}')

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}: reports.weekly.cron: {message}")


def test_tls_files_must_exist(tmp_path: Path) -> None:
    path = write_config(tmp_path, "tls: {cert_file: cert.pem, key_file: /nonexistent/key.pem}")

    assert problems_of(path) == [
        f"{path}: tls.cert_file: no such file: {tmp_path}/cert.pem",
        f"{path}: tls.key_file: no such file: /nonexistent/key.pem",
    ]


# --- paths and the database --------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    write(etc / "secrets" / "am.token", AM_TOKEN)
    write(etc / "cert.pem", "c")
    write(etc / "key.pem", "k")
    write_config(
        etc,
        """\
        database: sqlite:///data/itsmd.db
        rules: [rules/*.yaml, /srv/rules/*.yaml]
        playbooks: [../shared/playbooks/*.yaml]
        services: services.yaml
        tls: {cert_file: cert.pem, key_file: key.pem}
        auth: {tokens: [{name: am, role: ingest, token_file: secrets/am.token}]}
        """,
    )
    cwd = tmp_path / "elsewhere"

    config = load_config(Path("../etc/itsmd.yaml"), {}, cwd)

    assert config.path == etc / "itsmd.yaml" and config.base_dir == etc
    assert config.database == f"sqlite:///{etc}/data/itsmd.db"
    assert config.rules == (f"{etc}/rules/*.yaml", "/srv/rules/*.yaml")
    assert config.playbooks == (f"{etc}/../shared/playbooks/*.yaml",)
    assert config.services == etc / "services.yaml"
    assert config.tls is not None and config.tls.cert_file == etc / "cert.pem"
    assert config.auth is not None
    assert config.auth.tokens[0].sha256 == hashlib.sha256(AM_TOKEN.encode()).digest()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///itsmd.db", "sqlite:////base/itsmd.db"),
        ("sqlite:///data/x.db?timeout=5", "sqlite:////base/data/x.db?timeout=5"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite:////base/x.db"),
        ("sqlite:////var/lib/itsmd.db", "sqlite:////var/lib/itsmd.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://itsmd@db/itsmd", "postgresql://itsmd@db/itsmd"),
        ("postgresql+psycopg://itsmd@db/itsmd", "postgresql+psycopg://itsmd@db/itsmd"),
    ],
)
def test_database_url(url: str, expected: str) -> None:
    assert database_url(url, Path("/base")) == expected


def test_itsmd_database_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc", "database: sqlite:///from-file.db")
    cwd = tmp_path / "work"

    assert load_config(path, {"ITSMD_DATABASE": "postgresql://u@h/db"}, cwd).database == "postgresql://u@h/db"
    assert load_config(path, {"ITSMD_DATABASE": "sqlite:///env.db"}, cwd).database == f"sqlite:///{cwd}/env.db"
    assert load_config(None, {"ITSMD_DATABASE": "sqlite:///env.db"}, cwd).database == f"sqlite:///{cwd}/env.db"
    assert load_config(path, {"ITSMD_DATABASE": ""}, cwd).database == f"sqlite:///{tmp_path}/etc/from-file.db"


def test_invalid_itsmd_database_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"ITSMD_DATABASE": "mysql://db"}, tmp_path)

    assert caught.value.problems == [
        "$ITSMD_DATABASE: database: must be a sqlite:///FILE or postgresql://user@host/db URL"
    ]


# --- the listen address and auth --------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:9797", "[::]:9797", "10.1.2.3:80", "itsmd.example.org:9797"])
def test_non_loopback_without_auth_is_refused(tmp_path: Path, listen: str) -> None:
    path = write_config(tmp_path, f"listen: '{listen}'")
    host = Listen.parse(listen).host

    assert problems_of(path) == [
        f"{path}: listen: listening on {host} without auth is refused; add auth.tokens or listen on 127.0.0.1"
    ]


def test_empty_token_list_counts_as_no_auth(tmp_path: Path) -> None:
    path = write_config(tmp_path, "listen: 0.0.0.0:9797\nauth: {tokens: []}")

    assert len(problems_of(path)) == 1
    assert load_config(write_config(tmp_path, "auth: {tokens: []}"), {}, tmp_path).auth is None


def test_non_loopback_with_auth_is_allowed(tmp_path: Path) -> None:
    token = f"{{name: a, role: admin, sha256: {GRAFANA_SHA}}}"
    path = write_config(tmp_path, f"listen: 0.0.0.0:9797\nauth: {{tokens: [{token}]}}")

    config = load_config(path, {}, tmp_path)

    assert config.listen == Listen(host="0.0.0.0", port=9797)
    assert config.auth is not None and config.auth.tokens[0].role is Role.ADMIN


@pytest.mark.parametrize("listen", ["127.0.0.1:9797", "127.0.0.2:9797", "[::1]:9797", "localhost:9797"])
def test_loopback_without_auth_is_allowed(tmp_path: Path, listen: str) -> None:
    path = write_config(tmp_path, f"listen: '{listen}'")

    assert load_config(path, {}, tmp_path).listen.is_loopback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9797", Listen("127.0.0.1", 9797)),
        ("[::1]:0", Listen("::1", 0)),
        ("0.0.0.0:65535", Listen("0.0.0.0", 65535)),
    ],
)
def test_listen_parses(text: str, expected: Listen) -> None:
    assert Listen.parse(text) == expected
    assert str(Listen.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9797", "expected host:port"),
        (":9797", "expected host:port"),
        ("::1:9797", "write IPv6 addresses in brackets"),
        ("[::g]:9797", "not an IPv6 address"),
        ("127.0.0.1:http", "invalid port"),
        ("127.0.0.1:65536", "invalid port"),
        ("127.0.0.1:-1", "invalid port"),
    ],
)
def test_listen_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Listen.parse(text)


# --- secrets ---------------------------------------------------------------------------------------------------


def test_secret_hides_its_value() -> None:
    secret = Secret("CANARY-9f3e")

    assert secret.reveal() == "CANARY-9f3e"
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert secret == Secret("CANARY-9f3e") and secret != Secret("other")


def test_secrets_never_appear_in_the_config_repr(tmp_path: Path) -> None:
    canary = "CANARY-9f3e-0123456789"
    for name in ("token", "key", "url", "headers", "password"):
        write(tmp_path / name, f"X-Canary: {canary}\n" if name == "headers" else canary)
    path = write_config(
        tmp_path,
        f"""\
        database: postgresql://itsmd:{canary}@db/itsmd
        alertmanagers: [{{url: http://am:9093, token_env: AM_TOKEN}}]
        auth: {{tokens: [{{name: a, role: admin, token_file: token}}, {{name: b, role: ingest, token_env: T}}]}}
        notifiers:
          - {{name: pd, type: pagerduty, routing_key_file: key}}
          - {{name: chat, type: slack, url_file: url}}
          - {{name: hook, type: webhook, url_env: HOOK_URL, headers_file: headers}}
          - {{name: mail, type: email, smtp: "mail:25", from: a@b, to: [c@d], password_file: password}}
        """,
    )
    env = {"AM_TOKEN": canary, "T": canary + "-b", "HOOK_URL": canary}

    config = load_config(path, env, tmp_path)

    assert canary not in repr(config) and canary not in str(config)
    assert config.notifiers[3].settings["password"] == Secret(canary)


# --- durations -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h30m", 5400.0),
        ("90d", 90 * 86400.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2w", 14 * 86400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1d2h3m4s", 93784.0),
        (0, 0.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_durations_parse(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "5", "5x", "-5s", "1h 30m", "30m1h", "1h1h", "h", "5m\n", -1, True, float("nan"), float("inf")]
)
def test_invalid_durations_raise(value: str | float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["1h30m", "90d", "250ms", "1.5h", 7, "", "5", "5x", "30m1h", "h", -1, True])
def test_schema_accepts_the_durations_parse_duration_accepts(value: str | float) -> None:
    try:
        parse_duration(value)
        parses = True
    except ValueError:
        parses = False
    document = {"incidents": {"close_after": value}}

    assert load_validator(SCHEMA_NAME).is_valid(document) is parses


# --- the schema itself -----------------------------------------------------------------------------------------


def test_schema_roles_are_the_roles() -> None:
    schema: Any = load_validator(SCHEMA_NAME).schema
    role = schema["properties"]["auth"]["properties"]["tokens"]["items"]["properties"]["role"]

    assert role["enum"] == [r.value for r in Role]


def test_reconciliation_settings(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ingest: {reconcile_interval: 1m, reconcile_timeout: 2.5}\n"
                                  "alertmanagers: [{url: 'http://am:9093', token_env: AM_API}]")

    config = load_config(path, {"AM_API": "am-api-token"}, tmp_path)

    assert (config.ingest.reconcile_interval, config.ingest.reconcile_timeout) == (60.0, 2.5)
    assert config.alertmanagers == (AlertmanagerTarget("http://am:9093", Secret("am-api-token")),)
    assert (Ingest().reconcile_interval, Ingest().reconcile_timeout) == (30.0, 10.0)
    with pytest.raises(ConfigError, match=r"ingest\.reconcile_interval"):
        load_config(write_config(tmp_path, "ingest: {reconcile_interval: soon}"), {}, tmp_path)


def test_external_url_and_the_email_ca_file(tmp_path: Path) -> None:
    write(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    path = write_config(tmp_path, """
external_url: https://itsmd.example.org/
notifiers:
  - {name: mail, type: email, smtp: "127.0.0.1:2525", from: a@example.org, to: [b@example.org], ca_file: ca.pem,
     starttls: true}
""")
    config = load_config(path, {}, tmp_path)
    assert config.base_url == "https://itsmd.example.org"
    assert config.notifiers[0].settings["ca"] == Secret("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    assert Config.default(tmp_path).base_url == "http://127.0.0.1:9797"
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, "external_url: 12"), {}, tmp_path)
    assert "external_url" in str(e.value)
