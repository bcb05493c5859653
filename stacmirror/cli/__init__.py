"""The ``stacmirror`` command line: a thin layer over the library (:mod:`stacmirror.api`).

It parses flags, renders the library's events (:mod:`.render`) and maps errors to one line on
stderr and an exit code: bad input, missing credentials, refused access and a busy mirror exit 2
with nothing written; service failures that outlived the retries, and schemas that cannot be had,
exit 1. One module per command group.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .. import __version__
from ..errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    MirrorBusy,
    NotACatalog,
    SchemaUnavailable,
    ServiceError,
)
from .options import flag_for


def fail(message: str, code: int) -> None:
    click.echo(f"stacmirror: error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns known failures into one-line messages with a stable exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            fail(f"{flag_for(exc.field)}: {exc.message}" if exc.field else exc.message, 2)
        except AccessDenied as exc:
            fail(f"{getattr(exc, 'code', 'ACCESS_DENIED')}: {AccessDenied.HINT}", 2)
        except (CredentialsMissing, MirrorBusy, NotACatalog) as exc:
            fail(str(exc), 2)
        except SchemaUnavailable as exc:
            fail(str(exc), 1)
        except ServiceError as exc:
            # M2M's input and login errors are looked up only here: the client brings requests and
            # tenacity, which the local commands and --help start without
            from ..m2m.errors import AuthError, InputError

            if isinstance(exc, (InputError, AuthError)):
                fail(str(exc), 2)
            fail(f"the M2M service failed and retries did not help: {exc}", 1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="stacmirror")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Mirror Landsat Collection 2 from USGS M2M into a local STAC catalog.

    With no USGS credentials configured (M2M_USERNAME/M2M_TOKEN or
    ~/.config/stacmirror/credentials.ini) and no --service-url, commands run
    against the built-in M2M emulator and its synthetic scenes.
    """
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from . import catalog, crop, doctor, emulator, harvest, m2m, query, serve, sync

    for module in (m2m, harvest, sync, catalog, query, crop, serve, emulator, doctor):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
