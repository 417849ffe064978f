"""The one exception tree of itsmd.

    ItsmdError                      base; `retryable` says whether trying again later may succeed
    ├── ConfigError                 invalid configuration; carries every problem (`FILE: PATH: message`)
    ├── StartupError                the daemon must not start (lock held, unsafe listen address, ...)
    ├── StorageError                the database failed
    │   └── StorageUnavailable      retryable: connection lost, locked, disk full -> HTTP 503
    ├── UpstreamError               retryable: an outside service (an Alertmanager's API) could not be read
    │   └── Unreachable             the command-line client cannot reach the itsmd API (exit 3)
    ├── ApiError                    the itsmd API answered the command-line client 4xx/5xx (exit 1); `status`
    ├── NotifyError                 a page could not be delivered; `retryable` False when refused for good
    └── RequestError                a client's request cannot be served; `status` is its HTTP code
        ├── BadRequest              400 (body not JSON, wrong top-level shape, bad parameter)
        ├── Unauthenticated         401
        ├── Forbidden               403
        ├── NotFound                404
        ├── Conflict                409 (state machine refuses the transition)
        ├── PayloadTooLarge         413 (body or alert count over the limits)
        ├── RequestTimeout          408 (body not received within limits.body_timeout)
        └── UnsupportedMediaType    415 (state-changing request without Content-Type: application/json)

The HTTP mapping lives in one place: `itsmd.web.errors`.
"""

from __future__ import annotations


class ItsmdError(Exception):
    """Base of every error itsmd raises on purpose."""

    retryable = False


class ConfigError(ItsmdError):
    """The configuration (or a rule, service or playbook file) is invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) or "invalid configuration")


class StartupError(ItsmdError):
    """The daemon refuses to start; the message says why and what to do."""


class StorageError(ItsmdError):
    """The database failed in a way that retrying will not fix."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or written right now; retry later."""

    retryable = True


class UpstreamError(ItsmdError):
    """An outside service could not be read (unreachable, timeout, bad answer); the message holds no secret."""

    retryable = True


class Unreachable(UpstreamError):
    """The command-line client could not connect to (or hear back from) the daemon."""


class ApiError(ItsmdError):
    """The daemon answered the command-line client with an error status; the message is the server's `error`."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class NotifyError(ItsmdError):
    """A notifier could not deliver a page; the message names the notifier and the failure, never a secret.
    Retryable unless the receiver refused the page for good (a 4xx other than 408/429)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class RequestError(ItsmdError):
    """A client's request cannot be served; `status` is the HTTP status."""

    status = 400


class BadRequest(RequestError):
    status = 400


class Unauthenticated(RequestError):
    status = 401


class Forbidden(RequestError):
    status = 403


class NotFound(RequestError):
    status = 404


class Conflict(RequestError):
    status = 409


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


class RequestTimeout(RequestError):
    """The client did not send its request body within `limits.body_timeout`; the connection is closed."""

    status = 408
