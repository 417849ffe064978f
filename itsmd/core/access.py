"""Roles and what each may do (DESIGN §1.2): viewer < operator < admin; ingest is separate."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    INGEST = "ingest"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Permission(StrEnum):
    INGEST = "ingest"  # post alerts
    READ = "read"  # viewer endpoints
    OPERATE = "operate"  # lifecycle, silences, approvals, manual runs
    ADMINISTER = "administer"  # reload, kill switch, audit


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role."""

    name: str
    role: Role


# The principal of an unauthenticated daemon (allowed only on a loopback listen address).
ANONYMOUS_ADMIN = Principal(name="anonymous", role=Role.ADMIN)


def allows(role: Role, permission: Permission) -> bool:
    return permission in _GRANTS[role]
