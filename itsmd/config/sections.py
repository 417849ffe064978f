"""Compiling a schema-valid config document into a Config: paths, secrets, tokens and cross-checks."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from itsmd.config.duration import parse_duration
from itsmd.config.model import (
    AlertmanagerTarget,
    Auth,
    Automation,
    Config,
    Incidents,
    Ingest,
    Limits,
    Listen,
    Log,
    Notifier,
    Reports,
    Retention,
    Scaleout,
    SettingValue,
    Sla,
    Storage,
    Tls,
    Token,
)
from itsmd.config.problem import PathElement, Problem, format_path
from itsmd.config.secret import Secret, read_secret
from itsmd.config.silences import compile_declared
from itsmd.core.access import Role
from itsmd.core.silence import Silence

MIN_TOKEN_LENGTH = 16
_DATABASE_URL = re.compile(r"(sqlite|postgresql)(\+\w+)?://", re.ASCII)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
_NOTIFIER_COMMON = ("name", "type", "default")
_PLAIN_SECRETS = ("url",)  # given in the file, still handled as secrets (slack and webhook URLs carry keys)

Raw = Mapping[str, Any]
Where = tuple[PathElement, ...]

_LIST_SECTIONS = ("alertmanagers", "auth", "notifiers", "silences")  # compiled item by item

# Sections whose keys are exactly their dataclass's fields, with the keys that are durations.
_PLAIN_SECTIONS: dict[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "automation": (Automation, ()),
    "incidents": (Incidents, ("close_after", "stale_after")),
    "limits": (Limits, ("header_timeout", "body_timeout", "keepalive_timeout")),
    "retention": (Retention, ("alerts", "incidents")),
    "ingest": (Ingest, ("resolve_timeout", "reconcile_interval", "reconcile_timeout")),
    "storage": (Storage, ("busy_timeout",)),
    "log": (Log, ()),
    "scaleout": (Scaleout, ("leader_retry", "leader_heartbeat", "leader_timeout", "run_lease", "run_renew",
                            "run_poll", "page_lease")),
}


def compile_config(
    raw: Raw, *, path: Path, env: Mapping[str, str], schema_problems: list[Problem]
) -> tuple[Config, list[Problem]]:
    """The Config of `raw` and the problems found compiling it.

    Parts with `schema_problems` are skipped (sections keep their defaults, list items are left out): the
    caller reports those problems, so the Config returned then is only good for finding more of them.
    """
    compiler = _Compiler(path.parent, env, [p.path for p in schema_problems])
    builders: dict[str, Callable[[Any], Any]] = {
        "listen": compiler.listen,
        "tls": compiler.tls,
        "database": compiler.database,
        "rules": compiler.globs,
        "services": compiler.file,
        "playbooks": compiler.globs,
        "alertmanagers": compiler.alertmanagers,
        "auth": compiler.auth,
        "notifiers": compiler.notifiers,
        "reports": compiler.reports,
        "silences": compiler.silences,
        "external_url": str,
        **{name: functools.partial(compiler.plain_section, name) for name in _PLAIN_SECTIONS},
    }
    changes = {
        key: build(raw[key])
        for key, build in builders.items()
        if key in raw and not compiler.broken((key,), inside=key not in _LIST_SECTIONS)
    }
    config = replace(Config.default(path.parent), path=path, **changes)
    compiler.cross_check(raw, config)
    return config, compiler.problems


def database_url(url: str, base_dir: Path) -> str:
    """`url` with a relative SQLite file made absolute under `base_dir`; raises ValueError if not a DB URL."""
    match = _DATABASE_URL.match(url)
    if match is None:
        raise ValueError("must be a sqlite:///FILE or postgresql://user@host/db URL")
    if match.group(1) != "sqlite" or not url[match.end() :].startswith("/"):
        return url
    file, query_sep, query = url[match.end() + 1 :].partition("?")
    if not file or file == ":memory:" or Path(file).is_absolute():
        return url
    return f"{url[: match.end()]}/{base_dir / file}{query_sep}{query}"


class _Compiler:
    """Builds sections one at a time, collecting every problem instead of stopping at the first."""

    def __init__(self, base_dir: Path, env: Mapping[str, str], schema_paths: list[Where]) -> None:
        self.base_dir = base_dir
        self.env = env
        self.schema_paths = schema_paths
        self.problems: list[Problem] = []

    def broken(self, where: Where, *, inside: bool = True) -> bool:
        """A schema problem is at `where`, at a container of it (but the root) or, if `inside`, within it."""
        return any(
            (path and where[: len(path)] == path) or (inside and path[: len(where)] == where)
            for path in self.schema_paths
        )

    def items(self, raw: list[Raw], *where: PathElement) -> Iterator[tuple[Where, Raw]]:
        """The schema-valid items of a list with their paths."""
        for i, item in enumerate(raw):
            if not self.broken((*where, i)):
                yield (*where, i), item

    def problem(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where, message))

    def file(self, value: str) -> Path:
        return self.base_dir / value

    def globs(self, values: list[str]) -> tuple[str, ...]:
        return tuple(str(self.base_dir / v) for v in values)

    def duration(self, value: str | float, where: Where) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.problem(where, str(e))
            return 0.0

    def secret(self, item: Raw, key: str, where: Where) -> Secret | None:
        """The secret of a `*_file` / `*_env` key of `item`, or None after recording why it is unusable."""
        try:
            return read_secret(key.rpartition("_")[2], item[key], self.base_dir, self.env)
        except ValueError as e:
            self.problem((*where, key), str(e))
            return None

    def plain_section(self, name: str, raw: Raw) -> object:
        cls, durations = _PLAIN_SECTIONS[name]
        return cls(
            **{
                key: self.duration(value, (name, key)) if key in durations else _integral(value)
                for key, value in raw.items()
            }
        )

    def listen(self, value: str) -> Listen:
        try:
            return Listen.parse(value)
        except ValueError as e:
            self.problem(("listen",), str(e))
            return Listen(host="127.0.0.1", port=0)  # a stand-in: the problem already rejects the config

    def tls(self, raw: Raw) -> Tls:
        tls = Tls(cert_file=self.file(raw["cert_file"]), key_file=self.file(raw["key_file"]))
        for key, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if not path.is_file():
                self.problem(("tls", key), f"no such file: {path}")
        return tls

    def database(self, value: str) -> str:
        try:
            return database_url(value, self.base_dir)
        except ValueError as e:
            self.problem(("database",), str(e))
            return value

    def alertmanagers(self, raw: list[Raw]) -> tuple[AlertmanagerTarget, ...]:
        targets = []
        for where, item in self.items(raw, "alertmanagers"):
            keys = [k for k in ("token_file", "token_env") if k in item]
            token = self.secret(item, keys[0], where) if keys else None
            targets.append(AlertmanagerTarget(url=item["url"], token=token))
        return tuple(targets)

    def auth(self, raw: Raw) -> Auth | None:
        tokens: list[Token] = []
        names: dict[str, Where] = {}
        digests: dict[bytes, Where] = {}
        for where, item in self.items(raw.get("tokens", []), "auth", "tokens"):
            self.unique(names, item["name"], where, "token name")
            digest = self.token_digest(item, where)
            if digest is None:
                continue
            if digest in digests:
                self.problem(where, f"same token as {format_path(digests[digest])}; give each client its own")
            digests.setdefault(digest, where)
            tokens.append(Token(name=item["name"], role=Role(item["role"]), sha256=digest))
        return Auth(tokens=tuple(tokens)) if raw.get("tokens") else None

    def token_digest(self, item: Raw, where: Where) -> bytes | None:
        if "sha256" in item:
            return bytes.fromhex(item["sha256"])
        key = "token_file" if "token_file" in item else "token_env"
        token = self.secret(item, key, where)
        if token is None:
            return None
        if len(token.reveal()) < MIN_TOKEN_LENGTH:
            self.problem((*where, key), f"token too short; use at least {MIN_TOKEN_LENGTH} random characters")
            return None
        return hashlib.sha256(token.reveal().encode()).digest()

    def unique(self, seen: dict[str, Where], name: str, where: Where, what: str) -> None:
        if name in seen:
            self.problem((*where, "name"), f"duplicate {what} {name!r} (also {format_path(seen[name])})")
        seen.setdefault(name, where)

    def notifiers(self, raw: list[Raw]) -> tuple[Notifier, ...]:
        names: dict[str, Where] = {}
        notifiers = []
        for where, item in self.items(raw, "notifiers"):
            self.unique(names, item["name"], where, "notifier name")
            notifiers.append(
                Notifier(
                    name=item["name"],
                    type=item["type"],
                    default=item.get("default", False),
                    settings=MappingProxyType(self.settings(item, where)),
                )
            )
        return tuple(notifiers)

    def settings(self, item: Raw, where: Where) -> dict[str, SettingValue]:
        settings: dict[str, SettingValue] = {}
        for key, value in item.items():
            if key in _NOTIFIER_COMMON:
                continue
            name, _, suffix = key.rpartition("_")
            if suffix in ("file", "env"):
                secret = self.secret(item, key, where)
                if secret is not None:
                    settings[name] = self.headers(secret, (*where, key)) if name == "headers" else secret
            elif key in _PLAIN_SECRETS:
                settings[key] = Secret(value)
            else:
                settings[key] = tuple(value) if isinstance(value, list) else value
        return settings

    def headers(self, text: Secret, where: Where) -> Mapping[str, Secret]:
        """HTTP headers from `Name: value` lines; blank lines and `#` comments are skipped."""
        headers: dict[str, Secret] = {}
        for number, line in enumerate(text.reveal().splitlines(), start=1):
            name, colon, value = line.partition(":")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not colon or not _HEADER_NAME.fullmatch(name.strip()):
                self.problem(where, f"line {number}: expected 'Name: value'")
                continue
            headers[name.strip()] = Secret(value.strip())
        return MappingProxyType(headers)

    def silences(self, raw: list[Any]) -> tuple[Silence, ...]:
        declared, problems = compile_declared(raw, self.schema_paths)
        self.problems += problems
        return declared

    def reports(self, raw: Raw) -> Reports:
        defaults = Reports()
        timezone = raw.get("timezone", defaults.timezone)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            hint = "use an IANA name like UTC or Europe/Berlin"
            self.problem(("reports", "timezone"), f"unknown time zone {timezone!r}; {hint}")
        weekly = raw.get("weekly", {})
        if "cron" in weekly:
            self.cron(weekly["cron"], ("reports", "weekly", "cron"))
        sla = {priority: self.sla(targets, priority) for priority, targets in raw.get("sla", {}).items()}
        return Reports(
            timezone=timezone,
            sla=MappingProxyType(sla) if "sla" in raw else defaults.sla,
            weekly_cron=weekly.get("cron"),
            weekly_notifier=weekly.get("notifier"),
            weekly_file=self.file(weekly["file"]) if "file" in weekly else None,
        )

    def sla(self, raw: Raw, priority: str) -> Sla:
        where: Where = ("reports", "sla", priority)
        return Sla(**{key: self.duration(value, (*where, key)) for key, value in raw.items()})

    def cron(self, expression: str, where: Where) -> None:
        count = len(expression.split())
        if count != 5:
            self.problem(where, f"cron needs 5 fields (minute hour day month weekday); got {count}")
            return
        try:
            CronTrigger.from_crontab(expression, timezone="UTC")
        except ValueError as e:
            self.problem(where, f"invalid cron expression: {e}")

    def cross_check(self, raw: Raw, config: Config) -> None:
        """Checks spanning sections, made only when the sections involved are themselves valid."""
        auth_given = self.broken(("auth",)) or bool(raw.get("auth", {}).get("tokens"))
        listen_valid = "listen" in raw and not self.broken(("listen",))
        if listen_valid and not auth_given and not config.listen.is_loopback:
            host = config.listen.host
            self.problem(
                ("listen",),
                f"listening on {host} without auth is refused; add auth.tokens or listen on 127.0.0.1",
            )
        notifier = config.reports.weekly_notifier
        known = {n.name for n in config.notifiers}
        if notifier is not None and not self.broken(("notifiers",)) and notifier not in known:
            self.problem(("reports", "weekly", "notifier"), f"unknown notifier {notifier!r}")


def _integral(value: object) -> object:
    """JSON Schema's `integer` admits 4.0; the dataclass wants 4."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
