"""Exceptions raised by the M2M client.

The service reports failures through ``errorCode`` whatever the HTTP status, so
the client maps codes onto a small hierarchy that callers can act on: re-login
(:class:`AuthExpiredError`), wait and retry (:class:`ThrottleError`,
:class:`ServerError`), or stop and tell the user (:class:`InputError`,
:class:`AccessDeniedError`).
"""

from __future__ import annotations

from ..errors import AccessDenied, CredentialsMissing, ServiceError


class M2MError(ServiceError):
    """A failure reported by (or while talking to) the M2M service."""

    def __init__(self, code: str | None, message: str | None, *, endpoint: str | None = None):
        self.code = code or "UNKNOWN"
        self.message = message or ""
        self.endpoint = endpoint
        where = f"{endpoint}: " if endpoint else ""
        super().__init__(f"{where}{self.code}: {self.message}".rstrip(": "))


class AuthError(M2MError):
    """Credentials were rejected (``AUTH_INVALID`` and friends)."""


class AuthExpiredError(AuthError):
    """The API key expired or is unknown; one fresh login may fix it."""


class AccessDeniedError(AuthError, AccessDenied):
    """The account lacks the MACHINE role needed for this endpoint."""


class ThrottleError(M2MError):
    """The service asked us to slow down (``RATE_LIMIT``, HTTP 429)."""


class DownloadLimitError(ThrottleError):
    """Download quota reached (``RATE_LIMIT_USER_DL``): wait for the 15-minute window."""


class InputError(M2MError):
    """The request was invalid; retrying the same request cannot help."""


class ServerError(M2MError):
    """A server-side or transport failure that may pass (5xx, non-JSON, resets)."""


class CredentialsError(CredentialsMissing):
    """No usable credentials were found; the message says how to provide them."""


# Codes observed live but spelled differently in some transcriptions are all listed.
_BY_CODE: dict[str, type[M2MError]] = {
    "AUTH_INVALID": AuthError,
    "AUTH_EXPIRED": AuthExpiredError,
    "AUTH_KEY_INVALID": AuthExpiredError,
    "AUTH_UNAUTHROIZED": AccessDeniedError,
    "AUTH_UNAUTHORIZED": AccessDeniedError,
    "UNAUTHORIZED_USER": AccessDeniedError,
    "RATE_LIMIT": ThrottleError,
    "RATE_LIMIT_USER": ThrottleError,
    "RATE_LIMIT_USER_DL": DownloadLimitError,
    "NOT_FOUND": InputError,
    "VERSION_UNKNOWN": InputError,
    "ENDPOINT_UNAVAILABLE": InputError,
    "DOWNLOAD_ERROR": InputError,
}
_INPUT_PREFIXES = ("INPUT_", "DATASET_", "ORDER_")


def error_for_code(code: str, message: str | None, endpoint: str | None = None) -> M2MError:
    """Build the exception matching an M2M ``errorCode``; unknown codes count as server errors."""
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = InputError if code.startswith(_INPUT_PREFIXES) else ServerError
    return cls(code, message, endpoint=endpoint)
