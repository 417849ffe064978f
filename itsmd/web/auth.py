"""Authentication (bearer or basic, constant-time) and the permission each route requires."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from itsmd.core.access import ANONYMOUS_ADMIN, Permission, Principal, Role, allows
from itsmd.errors import Forbidden, Unauthenticated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)


@dataclass(frozen=True)
class Credential:
    name: str
    role: Role
    sha256: bytes  # digest of the token: the token itself is never kept


class Authenticator:
    """Maps an Authorization header to a Principal. With no credentials, everyone is an anonymous admin
    (the configuration refuses that unless the daemon listens on loopback only)."""

    def __init__(self, credentials: Sequence[Credential]) -> None:
        self._credentials = tuple(credentials)

    @property
    def enabled(self) -> bool:
        return bool(self._credentials)

    def authenticate(self, header: str | None) -> Principal:
        if not self._credentials:
            return ANONYMOUS_ADMIN
        if not header:
            raise Unauthenticated("authentication required")
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        user: str | None = None
        if scheme == "bearer":
            token = value.strip()
        elif scheme == "basic":
            try:
                user, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("malformed basic credentials") from None
        else:
            raise Unauthenticated("unsupported authorization scheme; use Bearer or Basic")
        digest = hashlib.sha256(token.encode()).digest()
        found: Credential | None = None
        for cred in self._credentials:  # compare with every credential: timing tells nothing
            name_ok = user is None or hmac.compare_digest(cred.name.encode(), user.encode())
            if hmac.compare_digest(cred.sha256, digest) and name_ok and found is None:
                found = cred
        if found is None:
            raise Unauthenticated("invalid credentials")
        return Principal(found.name, found.role)


def requires(permission: Permission | None) -> Callable[[Handler], Handler]:
    """Mark a handler with the permission it needs (None: open to all, e.g. /-/healthy)."""

    def mark(handler: Handler) -> Handler:
        handler.permission = permission  # type: ignore[attr-defined]
        return handler

    return mark


def check(principal: Principal, permission: Permission) -> None:
    if not allows(principal.role, permission):
        raise Forbidden(f"{principal.name} ({principal.role}) may not {permission}")
