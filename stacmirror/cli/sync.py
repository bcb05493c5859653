"""``stacmirror sync`` and ``stacmirror subscriptions``: keeping a mirror current."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .options import AnyMirror, json_option, quiet_option, record_option, service_option
from .render import human, make_renderer


@click.command()
@click.argument("out", type=AnyMirror(file_okay=False, path_type=Path))
@service_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be added, replaced and removed, and the bytes; write nothing.",
)
@click.option("--prune", is_flag=True, help="Remove products the service no longer lists (and their items).")
@click.option(
    "--keep-superseded",
    is_flag=True,
    help="Keep replaced products in OUT/.stacmirror/superseded/ (outside the catalog), not deleted.",
)
@click.option(
    "--workers", type=click.IntRange(1, 10), default=4, show_default=True, help="Parallel transfers."
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    help="Longest wait between download-retrieve polls, seconds.",
)
@click.option(
    "--poll-timeout",
    type=click.FloatRange(min=0.0),
    default=3600.0,
    show_default=True,
    help="Give up on downloads still being prepared after this many seconds.",
)
@click.option(
    "--fsync",
    is_flag=True,
    help="Flush each file to disk before it is renamed into place, so it survives a power cut "
    "(files always appear whole, by an atomic rename; this waits for the disk).",
)
@click.option("--no-catalog", is_flag=True, help="Do not bring the catalog and crops up to date afterwards.")
@record_option
@json_option
@quiet_option
def sync(
    out: Path,
    service_url: str | None,
    dry_run: bool,
    prune: bool,
    keep_superseded: bool,
    workers: int,
    poll_interval: float,
    poll_timeout: float,
    fsync: bool,
    no_catalog: bool,
    record: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Bring OUT up to date with every subscription its harvests recorded.

    Fetches new scenes, replaces products USGS reprocessed (a newer processing date, or Real-Time
    become Tier 1/2) once the new one is verified, reports products the service no longer lists
    (--prune removes them), then updates the catalog, items.parquet and affected crops. Exit code
    0: all current; 1: some files failed (what landed stays); 2: bad input or a busy mirror.
    """
    from ..api import sync as run_sync

    renderer = make_renderer(quiet, as_json)
    try:
        result = run_sync(
            out,
            service_url=service_url,
            dry_run=dry_run,
            prune=prune,
            keep_superseded=keep_superseded,
            catalog=not no_catalog,
            workers=workers,
            poll_interval=poll_interval,
            poll_timeout=poll_timeout,
            fsync=fsync,
            on_event=renderer,
            record=record,
        )
    finally:
        renderer.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in report_lines(result):
            click.echo(line)
    sys.exit(0 if result.ok else 1)


def report_lines(result) -> list[str]:
    """What the sync did (or, dry, would do), per subscription: every product id, with sizes."""
    lines = []
    would = "would " if result.dry_run else ""
    for report in result.subscriptions:
        data = report.to_dict()
        lines.append(f"subscription {data['subscription']}: {data['description']}")
        for product in data["added"]:
            lines.append(f"  {would}add      {product}")
        for pair in data["replaced"]:
            lines.append(f"  {would}replace  {pair['old']} -> {pair['new']}")
        for product in data["gone"]:
            if product in data["removed"]:
                lines.append(f"  {would}remove   {product} (no longer listed)")
            else:
                lines.append(f"  gone     {product} (no longer listed; kept, --prune removes it)")
        for failure in data["failures"]:
            lines.append(f"  FAILED   {failure}")
        moved = data["bytesToFetch"] if result.dry_run else data["bytesDownloaded"]
        lines.append(
            f"  {len(data['added'])} to add, {len(data['replaced'])} to replace, {len(data['gone'])} gone; "
            f"{would}fetch {human(moved)}"
            if result.dry_run
            else f"  {len(data['added'])} added, {len(data['replaced'])} replaced, {len(data['gone'])} gone, "
            f"{data['filesFailed']} file(s) failed; fetched {human(moved)}"
        )
    total = result.to_dict()
    state = "current" if result.current else "dry run" if result.dry_run else "updated"
    line = f"mirror {state}: {total['apiCallsTotal']} API calls"
    if result.catalog is not None:
        c = result.catalog
        line += f"; catalog: {c.written} item(s) written, {c.unchanged} unchanged, {c.removed} removed"
    for crop in result.crops:
        line += f"; crops {crop.stack_id}: {crop.action}"
    lines.append(line)
    return lines


@click.command()
@click.argument("out", type=AnyMirror(file_okay=False, path_type=Path))
@click.option("--remove", "remove", type=int, metavar="N", help="Drop subscription N (no file is deleted).")
@json_option
def subscriptions(out: Path, remove: int | None, as_json: bool) -> None:
    """List the subscriptions recorded in OUT (each harvest records one), or --remove N.

    OUT may be a mirror in an object store (s3://bucket/prefix): its ledger is pulled first, and
    a removal is pushed back under the store's lock."""
    from ..api import remove_subscription
    from ..api import subscriptions as list_subscriptions

    if remove is not None:
        gone = remove_subscription(out, remove)
        if as_json:
            click.echo(json.dumps(gone.to_dict(), indent=2))
        else:
            click.echo(f"removed subscription {gone.id}: {gone.describe()} (its {gone.scenes} scene(s) stay)")
        return
    found = list_subscriptions(out)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in found], indent=2))
        return
    if not found:
        click.echo(f"{out} has no subscriptions (each harvest records one)", err=True)
    for sub in found:
        last = sub.last_run or "never"
        click.echo(f"{sub.id}  {sub.describe()}  [{sub.scenes} scene(s), last run {last}]")


COMMANDS = [sync, subscriptions]
