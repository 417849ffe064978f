"""The configuration as frozen objects (DESIGN §1.2): what runtime code reads instead of YAML."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from itsmd.config.secret import Secret
from itsmd.core.access import Role
from itsmd.core.silence import Silence

DEFAULT_PORT = 9797

# What a notifier's `settings` may hold: plain values, secrets, recipients, header name -> secret value.
SettingValue = str | bool | Secret | tuple[str, ...] | Mapping[str, Secret]


@dataclass(frozen=True, slots=True)
class Listen:
    host: str  # without brackets, also for IPv6
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """`host:port`, IPv6 as `[::1]:9797`; raises ValueError saying what is wrong."""
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port like 127.0.0.1:{DEFAULT_PORT}, got {text[:60]!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            _check_ipv6(host)
        elif ":" in host or "[" in host or "]" in host:
            raise ValueError(f"write IPv6 addresses in brackets, like [::1]:{DEFAULT_PORT}")
        if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"invalid port {port_text[:20]!r}; use 1-65535 (0 picks a free port)")
        return cls(host=host, port=int(port_text))

    @property
    def is_loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and localhost: only this machine can connect."""
        if self.host.lower() in ("localhost", "localhost."):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _check_ipv6(host: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError as e:
        raise ValueError(f"not an IPv6 address: {host[:60]!r}") from e


@dataclass(frozen=True, slots=True)
class Tls:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: Role
    sha256: bytes = field(repr=False)  # the 32-byte SHA-256 digest of the token; the token itself is not kept


@dataclass(frozen=True, slots=True)
class Auth:
    tokens: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class AlertmanagerTarget:
    url: str
    token: Secret | None = None


@dataclass(frozen=True, slots=True)
class Notifier:
    """A way to tell humans; `settings` (read-only) holds the type's other keys, `*_file` / `*_env` resolved.

    - pagerduty: `routing_key` Secret; `api_url` str (optional, the Events API endpoint)
    - slack: `url` Secret (the incoming-webhook URL)
    - webhook: `url` Secret (also when written plainly); `headers` Mapping[str, Secret] (optional; the file
      or variable holds one `Name: value` per line)
    - email: `smtp` "host:port", `from` str, `to` tuple[str, ...]; optional `starttls` bool (default true),
      `username` str, `password` Secret, `ca` Secret (PEM of a private CA that signs the server's certificate)
    """

    name: str
    type: str  # pagerduty | slack | webhook | email
    default: bool = False
    settings: Mapping[str, SettingValue] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Automation:
    enabled: bool = True
    dry_run: bool = False
    max_concurrent_runs: int = 64
    max_pages_per_hour: int = 30


@dataclass(frozen=True, slots=True)
class Incidents:
    close_after: float = 86400.0  # seconds after resolution until an incident closes
    stale_after: float = 32400.0  # seconds without a refresh until a firing alert is flagged stale


@dataclass(frozen=True, slots=True)
class Sla:
    ack: float | None = None  # seconds
    restore: float | None = None


def _default_sla() -> Mapping[str, Sla]:
    return MappingProxyType({"P1": Sla(ack=300.0, restore=3600.0), "P2": Sla(ack=900.0, restore=14400.0)})


@dataclass(frozen=True, slots=True)
class Reports:
    timezone: str = "UTC"
    sla: Mapping[str, Sla] = field(default_factory=_default_sla)  # priority -> targets; replaced, not merged
    weekly_cron: str | None = None
    weekly_notifier: str | None = None
    weekly_file: Path | None = None  # the weekly Markdown report is also written here (relative to the config)


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 10485760
    max_alerts_per_request: int = 10000
    header_timeout: float = 10.0  # seconds for a connection's first request head (the TLS handshake included)
    body_timeout: float = 30.0  # seconds to receive a request's whole body once its head is in
    keepalive_timeout: float = 15.0  # seconds an idle connection stays open; a later request's head within it
    max_connections_per_source: int = 256  # open connections from one client address; more are answered 429


@dataclass(frozen=True, slots=True)
class Retention:
    alerts: float = 90 * 86400.0
    incidents: float = 730 * 86400.0


@dataclass(frozen=True, slots=True)
class Ingest:
    resolve_timeout: float = 300.0  # for /api/v2/alerts without endsAt
    pipeline_batch: int = 100  # deliveries per pipeline transaction: small keeps ingest commits frequent
    pipeline_batch_bytes: int = 4 * 1024 * 1024  # and at most this much stored payload (bounds memory in storms)
    pipeline_batch_new: int = 100  # and at most this many alerts that begin an episode (bounds a transaction's time)
    reconcile_interval: float = 30.0  # at least this long between two reconciliations with `alertmanagers`
    reconcile_timeout: float = 10.0  # for reading one Alertmanager's alerts


@dataclass(frozen=True, slots=True)
class Storage:
    sqlite_synchronous: str = "FULL"  # FULL | NORMAL | OFF
    pool_size: int = 4
    busy_timeout: float = 5.0  # seconds a SQLite write waits for a lock before the request gets a 503


@dataclass(frozen=True, slots=True)
class Scaleout:
    """Replicas on one PostgreSQL (docs/deployment.md): leadership and the leases of runs and pages."""

    leader_retry: float = 2.0  # a follower tries the leader lock this often
    leader_heartbeat: float = 1.0  # the leader checks its lock this often
    leader_timeout: float = 3.0  # a check slower than this fails: the leader steps down
    run_lease: float = 30.0  # a claimed run is another replica's to recover after this without renewal
    run_renew: float = 10.0
    run_poll: float = 5.0  # a replica looks for runs created elsewhere this often
    page_lease: float = 60.0  # a claimed page likewise (renewed while its delivery lasts)


@dataclass(frozen=True, slots=True)
class Log:
    format: str = "logfmt"  # logfmt | json
    level: str = "info"  # debug | info | warning | error


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; every path in it is absolute."""

    path: Path | None  # the config file (absolute), None when running on defaults
    base_dir: Path  # relative paths were resolved against this folder
    listen: Listen
    tls: Tls | None
    database: str = field(repr=False)  # a URL that may carry a password
    rules: tuple[str, ...]  # globs
    services: Path | None
    playbooks: tuple[str, ...]  # globs
    alertmanagers: tuple[AlertmanagerTarget, ...]
    auth: Auth | None  # None = no auth (allowed only on a loopback listen address)
    notifiers: tuple[Notifier, ...]
    automation: Automation
    incidents: Incidents
    reports: Reports
    limits: Limits
    retention: Retention
    ingest: Ingest
    storage: Storage
    log: Log
    silences: tuple[Silence, ...] = ()  # maintenance windows declared in the file (ids `config:<hash>`)
    external_url: str | None = None  # how people reach this daemon (links in pages); default: from `listen`
    scaleout: Scaleout = Scaleout()

    @property
    def base_url(self) -> str:
        """The daemon's URL for people, without a trailing slash."""
        if self.external_url:
            return self.external_url.rstrip("/")
        return f"{'https' if self.tls else 'http'}://{self.listen}"

    @classmethod
    def default(cls, base_dir: Path) -> Config:
        """The configuration without a config file, relative paths under `base_dir`."""
        return cls(
            path=None,
            base_dir=base_dir,
            listen=Listen(host="127.0.0.1", port=DEFAULT_PORT),
            tls=None,
            database=f"sqlite:///{base_dir / 'itsmd.db'}",
            rules=(str(base_dir / "rules" / "*.yaml"),),
            services=None,
            playbooks=(str(base_dir / "playbooks" / "*.yaml"),),
            alertmanagers=(),
            auth=None,
            notifiers=(),
            automation=Automation(),
            incidents=Incidents(),
            reports=Reports(),
            limits=Limits(),
            retention=Retention(),
            ingest=Ingest(),
            storage=Storage(),
            log=Log(),
        )
