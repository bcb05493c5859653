"""The exceptions stacmirror raises, under one base class.

Library code raises these with messages in library terms (parameter names,
not command-line flags); the CLI maps each class to a one-line message and an
exit code, and :class:`InvalidInput.field` to its flag name.
"""

from __future__ import annotations


class StacmirrorError(Exception):
    """Base of every error stacmirror raises on purpose."""


class InvalidInput(StacmirrorError, ValueError):
    """A parameter cannot be used as given; nothing was written.

    ``field`` names the parameter (``"bbox"``, ``"start"``, ``"bands"``, ...), or is None when the
    problem is not one parameter's. ``str(exc)`` is ``"<field>: <message>"``.
    """

    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class CredentialsMissing(StacmirrorError):
    """No usable M2M credentials were found; the message says how to provide them."""


class AccessDenied(StacmirrorError):
    """The account may not do this (for downloads: the ERS 'MACHINE' role is missing)."""

    HINT = (
        "your ERS account has no M2M download access: request the 'MACHINE' role at "
        "https://ers.cr.usgs.gov/profile/access (approval takes a few days)"
    )


class MirrorBusy(StacmirrorError):
    """Another harvest holds the mirror's lock."""


class NotACatalog(StacmirrorError):
    """The folder has no catalog yet where one is needed."""


class SchemaUnavailable(StacmirrorError):
    """A STAC extension schema is neither cached nor downloadable."""


class ServiceError(StacmirrorError):
    """The M2M service failed and retries did not help (base of the M2M client's errors)."""
