"""``stacmirror emulator``: the offline M2M emulator, for trying and testing without USGS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .options import serve_until_interrupted


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=0, show_default=True, help="Port (0 picks a free one).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Cache folder for generated files.")
@click.option("--scenes", default=36, show_default=True, help="Number of synthetic acquisitions.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic archive.")
@click.option("--full-size", is_flag=True, help="Full-size scenes (~7000 x 7000 px) for benchmarks.")
@click.option(
    "--today",
    metavar="YYYY-MM-DD",
    help="Show the archive as of this date: scenes published a few days after acquisition, "
    "Real-Time products replaced by Tier 1/2 after a few weeks, some products reprocessed.",
)
@click.option(
    "--reprocess-share",
    type=click.FloatRange(0, 1),
    default=0.2,
    show_default=True,
    help="With --today: the share of acquisitions whose product is reprocessed (a later "
    "processing date) 60-400 days after acquisition.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME:TOKEN[:nomachine]",
    help="Accepted credentials (default demo:demo-token); ':nomachine' denies downloads.",
)
@click.option("--cut-every", type=int, default=0, help="Cut every Nth file transfer mid-body.")
@click.option("--api-5xx-every", type=int, default=0, help="Every Nth API call: HTTP 503 HTML page.")
@click.option("--api-html-every", type=int, default=0, help="Every Nth API call: HTTP 200 HTML page.")
@click.option("--file-5xx-every", type=int, default=0, help="Every Nth file transfer: HTTP 502.")
@click.option("--file-html-every", type=int, default=0, help="Every Nth file transfer: HTML error body.")
@click.option("--expire-key-after", type=int, default=0, help="API keys expire after N calls.")
@click.option("--preparing-polls", type=int, default=0, help="Downloads stay preparing for N polls.")
@click.option("--never-ready-every", type=int, default=0, help="Every Nth download never becomes ready.")
@click.option("--url-ttl", type=float, default=86400.0, help="Signed URL lifetime in seconds (then 403).")
@click.option("--throttle-bps", type=int, default=0, help="Cap each file transfer at N bytes/s.")
@click.option("--api-latency", type=float, default=0.0, help="Seconds each API call takes.")
@click.option(
    "--downloads-disabled", is_flag=True, help="Downloads temporarily disabled (notification + failed)."
)
@click.option(
    "--retire", "retired", multiple=True, metavar="DATASET", help="Answer as if DATASET no longer existed."
)
@click.option(
    "--withdraw",
    "withdrawn",
    multiple=True,
    metavar="ENTITY_ID",
    help="Leave this acquisition out of every search, as if USGS had withdrawn it.",
)
@click.option(
    "--vary",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="SEED",
    help="Serve the details the M2M documentation leaves open another way (0: as documented).",
)
@click.option(
    "--replay",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Answer API calls from DIR/transcript.jsonl (written with --record) instead.",
)
def emulator(
    host: str,
    port: int,
    data_dir: Path | None,
    scenes: int,
    seed: int,
    full_size: bool,
    today: str | None,
    reprocess_share: float,
    users: tuple[str, ...],
    vary: int,
    replay: Path | None,
    **faults: Any,
) -> None:
    """Run the offline M2M emulator (API + file hosts) until interrupted."""
    if replay is not None:
        _replay(replay, host, port)
        return
    from ..emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator, Faults
    from ..emulator.state import Variation
    from ..harvester.selection import parse_date
    from ..service import emulator_cache

    archive_day = parse_date(today, "today") if today is not None else None

    accounts: dict[str, tuple[str, bool]] = {}
    for entry in users or (f"{DEMO_USERNAME}:{DEMO_TOKEN}",):
        name, sep, rest = entry.partition(":")
        token, _, role = rest.partition(":")
        if not sep or not name or not token or role not in ("", "nomachine"):
            raise InvalidInput("user", f"must be NAME:TOKEN or NAME:TOKEN:nomachine, got {name!r}:...")
        accounts[name] = (token, role != "nomachine")
    fault_config = Faults(
        file_cut_every=faults["cut_every"],
        api_5xx_every=faults["api_5xx_every"],
        api_html_every=faults["api_html_every"],
        file_5xx_every=faults["file_5xx_every"],
        file_html_every=faults["file_html_every"],
        expire_key_after=faults["expire_key_after"],
        preparing_polls=faults["preparing_polls"],
        never_ready_every=faults["never_ready_every"],
        url_ttl=faults["url_ttl"],
        throttle_bps=faults["throttle_bps"],
        api_latency=faults["api_latency"],
        downloads_disabled=faults["downloads_disabled"],
        retired_datasets=tuple(faults["retired"]),
        withdrawn=tuple(faults["withdrawn"]),
    )
    emu = Emulator(
        data_dir or emulator_cache(),
        scenes=scenes,
        seed=seed,
        full_size=full_size,
        faults=fault_config,
        variation=Variation.from_seed(vary),
        users=accounts,
        host=host,
        port=port,
        today=archive_day,
        reprocess_share=reprocess_share,
    )
    click.echo(f"M2M emulator serving {emu.service_url} (users: {', '.join(accounts)})", err=False)
    if archive_day is not None:
        click.echo(
            f"archive as of {archive_day}: {len(emu.service.scenes)} acquisition(s) published", err=True
        )
    if vary:
        click.echo(f"variation {vary}: {emu.service.variation.describe()}", err=True)
    serve_until_interrupted(emu.serve_forever, emu.stop)


def _replay(folder: Path, host: str, port: int) -> None:
    from ..emulator.replay import ReplayServer

    if not (folder / "transcript.jsonl").is_file():
        raise InvalidInput("replay", f"{folder} holds no transcript.jsonl (write one with --record DIR)")
    server = ReplayServer(folder, host, port)
    click.echo(f"M2M replay serving {server.service_url} (from {folder / 'transcript.jsonl'})")
    serve_until_interrupted(server.serve_forever, server.server_close)


COMMANDS = [emulator]
