"""Errors the CLI reports as one line on stderr with exit code 2 (bad input, nothing written)."""

from __future__ import annotations


class UserError(Exception):
    """The user asked for something that cannot be done as asked; the message says why."""
