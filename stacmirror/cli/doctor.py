"""``stacmirror doctor``: one line per check; exit 0 only when every check passes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .options import LocalMirror, json_option, record_option, service_option


@click.command()
@service_option
@click.option("--out", type=LocalMirror(file_okay=False, path_type=Path), help="Also check free space here.")
@record_option
@json_option
def doctor(service_url: str | None, out: Path | None, record: Path | None, as_json: bool) -> None:
    """Check that a harvest can run: service, token, MACHINE role, quota, notices, clock, disk."""
    from ..doctor import doctor as run_doctor

    report = run_doctor(service_url, out=out, record=record)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for check in report.checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    sys.exit(0 if report.ok else 1)


COMMANDS = [doctor]
