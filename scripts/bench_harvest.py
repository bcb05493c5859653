#!/usr/bin/env python3
"""Harvest benchmark (not a test): stacmirror against plain parallel curl on the same files.

Prints three figures, each against a baseline measured in the same run:

1. wall time of ``stacmirror harvest`` (bands mode, full-size emulator scenes) divided by the wall
   time of the seed notebooks' flow (plain ``requests``: login, search, download-options,
   download-request) followed by ``curl --parallel`` on the same signed URLs with the same
   concurrency (curl alone is printed too), the median of
   ``--repeat`` rounds each (goal <= 1.10 on raw loopback, <= 1.02 with transfers capped like a
   network link);
2. peak RSS of a ``stacmirror harvest`` process fetching one full-size product bundle (goal < 150 MB),
   next to the bundle's size;
3. API calls for 10 and 100 scenes x 1 and 10 bands, logout included (goal: <= 12, flat in bands and
   scenes while the files fit one download-request);
4. with ``--store``: the same harvest into an S3 store (moto's server on 127.0.0.1, a test extra)
   against the harvest to the local disk, alternating rounds, transfers capped like a network link
   (goal <= 1.10), and the peak RSS of a bundle streamed and unpacked into the store (goal < 200 MB).

Usage: .venv/bin/python scripts/bench_harvest.py [--scenes 3] [--workers 4] [--repeat 3] [--data DIR]
       [--store] [--store-only]
The first run generates the full-size scenes (minutes); they are cached under --data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection
from stacmirror.m2m import Credentials, M2MClient, Secret

DATASET = "landsat_ot_c2_l2"
BANDS = [f"SR_B{n}" for n in range(1, 8)] + ["ST_B10", "QA_PIXEL", "QA_RADSAT", "SR_QA_AEROSOL"]
TEN_BANDS = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "MTL"]
CREDENTIALS = Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN))


def env_for(emu: Emulator) -> dict[str, str]:
    return {
        **os.environ,
        "M2M_SERVICE_URL": emu.service_url,
        "M2M_USERNAME": DEMO_USERNAME,
        "M2M_TOKEN": DEMO_TOKEN,
    }


def cli() -> list[str]:
    return [sys.executable, "-m", "stacmirror.cli"]


def newest_scenes(emu: Emulator, count: int):
    return [s for s in emu.service.scenes if s.l2_generated][:count]


def warm(emu: Emulator, scenes) -> None:
    for i, scene in enumerate(scenes, 1):
        started = time.monotonic()
        emu.service.store.files(scene, 2)
        print(f"  scene {i}/{len(scenes)} ready ({time.monotonic() - started:.0f} s)", flush=True)


def harvest_args(out: Path | str, scenes, workers: int, extra: list[str]) -> list[str]:
    start = min(s.acquired for s in scenes).isoformat()
    end = max(s.acquired for s in scenes).isoformat()
    return [
        *cli(),
        "harvest",
        str(out),
        "--dataset",
        DATASET,
        "--wkt",
        "POLYGON ((-180 -85, 180 -85, 180 85, -180 85, -180 -85))",
        "--start",
        start,
        "--end",
        end,
        "--max-scenes",
        str(len(scenes)),
        "--workers",
        str(workers),
        "--no-browse",
        "--no-catalog",
        "--quiet",
        "--poll-interval",
        "1",
        *extra,
    ]


# The seed notebooks' flow, as a user writes it with plain requests: log in, search, ask for the
# options, pick the band files, request them, collect the URLs (retrieve for queued ones), log out.
# The previous round's order is removed first, as the USGS sample removes its own when done.
NOTEBOOK = """
import json, os, sys, requests
url = os.environ["M2M_SERVICE_URL"].rstrip("/") + "/"
def call(endpoint, payload, key=None):
    answer = requests.post(url + endpoint, json=payload, headers={"X-Auth-Token": key} if key else {})
    return answer.json()["data"]
key = call("login-token", {"username": os.environ["M2M_USERNAME"], "token": os.environ["M2M_TOKEN"]})
call("download-order-remove", {"label": "bench-notebook"}, key)  # the previous round's, fetched
dataset, start, end, count = sys.argv[1:5]
suffixes = tuple(f"_{band}.TIF" for band in sys.argv[5].split(","))
found = call("scene-search", {"datasetName": dataset, "maxResults": int(count), "sceneFilter": {
    "acquisitionFilter": {"start": start, "end": end}}}, key)
ids = [scene["entityId"] for scene in found["results"]]
options = call("download-options", {"datasetName": dataset, "entityIds": ids}, key)
files = {f["entityId"]: f["id"] for o in options for f in (o.get("secondaryDownloads") or [])
         if f["displayId"].endswith(suffixes) and f.get("available", True)}
downloads = [{"entityId": e, "productId": p} for e, p in files.items()]
answer = call("download-request", {"downloads": downloads, "label": "bench-notebook"}, key)
urls = [d["url"] for d in answer["availableDownloads"]]
labels = set((answer.get("duplicateProducts") or {}).values())
if answer.get("preparingDownloads"):
    labels.add("bench-notebook")
for label in labels:
    got = call("download-retrieve", {"label": label}, key)
    urls += [d["url"] for d in got["available"] if d["url"] not in urls and d.get("entityId") in files]
call("logout", None, key)
print("\\n".join(urls))
"""


def notebook_urls(emu: Emulator, scenes) -> list[str]:
    start = min(s.acquired for s in scenes).isoformat()
    end = max(s.acquired for s in scenes).isoformat()
    args = [sys.executable, "-c", NOTEBOOK, DATASET, start, end, str(len(scenes)), ",".join(BANDS)]
    result = subprocess.run(args, env=env_for(emu), check=True, capture_output=True, text=True)
    return result.stdout.split()


def time_harvest(
    emu: Emulator, scenes, workers: int, out: Path | str, env: dict[str, str] | None = None
) -> tuple[float, int, int, float]:
    """Wall time, files, bytes and the harvest process's peak RSS (MB, its own getrusage). ``out``
    may be a store URL (files and bytes are then not counted here: 0, 0)."""
    args = harvest_args(out, scenes, workers, ["--bands", ",".join(BANDS)])
    command = [sys.executable, "-c", PEAK_RSS, *args[args.index("harvest") :]]
    started = time.monotonic()
    result = subprocess.run(
        command, env={**env_for(emu), **(env or {})}, check=True, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    if isinstance(out, str):
        return elapsed, 0, 0, peak_rss_mb(result.stderr)
    files = [p for p in out.rglob("*") if p.is_file() and ".stacmirror" not in p.parts]
    return elapsed, len(files), sum(p.stat().st_size for p in files), peak_rss_mb(result.stderr)


def peak_rss_mb(stderr: str) -> float:
    line = next(line for line in stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024


def time_curl(urls: list[str], workers: int, folder: Path) -> tuple[float, int]:
    folder.mkdir()
    listing = "\n".join(f'url = "{u}"\noutput = "{folder / str(i)}"' for i, u in enumerate(urls))
    config = folder.parent / f"{folder.name}.cfg"
    config.write_text(listing + "\n")
    started = time.monotonic()
    subprocess.run(
        [
            "curl",
            "--silent",
            "--no-progress-meter",
            "--fail",
            "--parallel",
            "--parallel-max",
            str(workers),
            "--config",
            str(config),
        ],
        check=True,
    )
    elapsed = time.monotonic() - started
    return elapsed, sum(p.stat().st_size for p in folder.iterdir())


def bench_throughput(emu: Emulator, scenes, workers: int, repeat: int, label: str, goal: float) -> None:
    """``repeat`` rounds of harvest and curl, the order alternating, the disk flushed before each
    (so neither pays for the other's writeback); the ratio is of the medians."""
    harvests: list[float] = []
    curls: list[float] = []  # the notebook flow's API calls, then curl
    bare: list[float] = []  # curl alone
    peaks: list[float] = []  # the harvest's peak RSS, MB
    for round_ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            order = ("harvest", "curl") if round_ % 2 == 0 else ("curl", "harvest")
            for step in order:
                os.sync()
                if step == "harvest":
                    elapsed, count, size, rss = time_harvest(emu, scenes, workers, Path(tmp) / "harvest")
                    harvests.append(elapsed)
                    peaks.append(rss)
                else:
                    started = time.monotonic()
                    urls = notebook_urls(emu, scenes)
                    asked = time.monotonic() - started
                    elapsed, curl_size = time_curl(urls, workers, Path(tmp) / "curl")
                    curls.append(asked + elapsed)
                    bare.append(elapsed)
        os.sync()
    harvest_time, curl_time = statistics.median(harvests), statistics.median(curls)
    runs = lambda times: ", ".join(f"{t:.2f}" for t in times)  # noqa: E731
    print(f"throughput, {label}: {count} files, {size / 1e6:.0f} MB, {workers} workers, median of {repeat}")
    print(
        f"  stacmirror harvest (incl. start-up, search, API calls, verification): "
        f"{harvest_time:6.2f} s "
        f"({size / 1e6 / harvest_time:.0f} MB/s; runs {runs(harvests)}); peak RSS {max(peaks):.0f} MB"
    )
    print(
        f"  notebook flow (plain requests: login, search, options, request) + curl --parallel, same "
        f"{len(urls)} URLs ({curl_size / 1e6:.0f} MB): {curl_time:6.2f} s "
        f"({curl_size / 1e6 / curl_time:.0f} MB/s; runs {runs(curls)})"
    )
    bare_time = statistics.median(bare)
    print(f"  curl alone: {bare_time:6.2f} s (runs {runs(bare)})")
    print(
        f"  ratio harvest / (notebook flow + curl): {harvest_time / curl_time:.2f}  (goal <= {goal:.2f}); "
        f"harvest / curl alone: {harvest_time / bare_time:.2f}"
    )


PEAK_RSS = """
import atexit, resource, sys
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
atexit.register(lambda: print(f"PEAK_RSS_KB {peak()}", file=sys.stderr))
from stacmirror.cli import main
sys.argv = ["stacmirror", *sys.argv[1:]]
main()
"""


def bench_memory(emu: Emulator, scene, repeat: int) -> None:
    """The harvest process's own peak RSS (getrusage in that process, reported at exit); the largest
    of ``repeat`` runs is the figure."""
    peaks = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            args = harvest_args(Path(tmp) / "bundle", [scene], 1, [])
            command = [sys.executable, "-c", PEAK_RSS, *args[args.index("harvest") :]]
            result = subprocess.run(command, env=env_for(emu), check=True, capture_output=True, text=True)
        peaks.append(peak_rss_mb(result.stderr))
    bundle = emu.service.store.files(scene, 2)["tar"].size
    print(
        f"memory: one bundle of {bundle / 1e6:.0f} MB fetched, verified and unpacked; peak RSS of the "
        f"harvest process {max(peaks):.0f} MB, the largest of {', '.join(f'{p:.0f}' for p in peaks)} "
        "(goal < 150 MB)"
    )


def bench_store(emu: Emulator, scenes, workers: int, repeat: int) -> None:
    """The harvest into an S3 store against the same harvest to the local disk, ``repeat``
    alternating rounds each (a fresh prefix per round, emptied after it), the medians compared;
    then the peak RSS of one bundle streamed and unpacked into the store."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.s3 import KEY, REGION, SECRET, MotoServer

    def listed(s3, prefix: str) -> dict[str, int]:
        """Key -> size, without reading a body: this process must stay small, since a child started
        by fork inherits its peak RSS into the child's getrusage figure."""
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix):
            found.update({e["Key"]: e["Size"] for e in page.get("Contents", [])})
        return found

    with tempfile.TemporaryDirectory() as logs:
        server = MotoServer(Path(logs) / "moto.log")
        try:
            s3 = server.client()
            s3.create_bucket(Bucket="bench")
            env = {
                "AWS_ACCESS_KEY_ID": KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": server.url,
                "XDG_CACHE_HOME": str(Path(logs) / "cache"),
            }
            disk, store, store_peaks = [], [], []
            stored = 0
            for round_ in range(repeat):
                order = ("disk", "store") if round_ % 2 == 0 else ("store", "disk")
                with tempfile.TemporaryDirectory() as tmp:
                    for step in order:
                        os.sync()
                        if step == "disk":
                            elapsed, count, size, _ = time_harvest(emu, scenes, workers, Path(tmp) / "h")
                            disk.append(elapsed)
                        else:
                            url = f"s3://bench/round-{round_}"
                            elapsed, _, _, rss = time_harvest(emu, scenes, workers, url, env)
                            store.append(elapsed)
                            store_peaks.append(rss)
                            found = listed(s3, f"round-{round_}/")
                            stored = sum(v for k, v in found.items() if "/.stacmirror/" not in k)
                            for key in found:
                                s3.delete_object(Bucket="bench", Key=key)
            runs = lambda times: ", ".join(f"{t:.2f}" for t in times)  # noqa: E731
            disk_time, store_time = statistics.median(disk), statistics.median(store)
            print(f"object store (moto on 127.0.0.1), {label_of(emu)}: {count} files, {size / 1e6:.0f} MB")
            print(f"  harvest to the local disk: {disk_time:6.2f} s (runs {runs(disk)})")
            print(
                f"  harvest into s3://: {store_time:6.2f} s (runs {runs(store)}; {stored / 1e6:.0f} MB), "
                f"peak RSS {max(store_peaks):.0f} MB"
            )
            print(f"  ratio store / disk: {store_time / disk_time:.2f}  (goal <= 1.10)")
            peaks = []
            for round_ in range(repeat):
                url = f"s3://bench/bundle-{round_}"
                args = harvest_args(url, scenes[:1], 1, [])
                command = [sys.executable, "-c", PEAK_RSS, *args[args.index("harvest") :]]
                result = subprocess.run(
                    command, env={**env_for(emu), **env}, check=True, capture_output=True, text=True
                )
                peaks.append(peak_rss_mb(result.stderr))
                members = listed(s3, f"bundle-{round_}/")
                for key in members:
                    s3.delete_object(Bucket="bench", Key=key)
            bundle = emu.service.store.files(scenes[0], 2)["tar"].size
            print(
                f"  memory: one bundle of {bundle / 1e6:.0f} MB streamed, verified and unpacked into S3 "
                f"({len(members) - 1} objects); peak RSS {max(peaks):.0f} MB, the largest of "
                f"{', '.join(f'{p:.0f}' for p in peaks)} (goal < 200 MB)"
            )
        finally:
            server.stop()


def label_of(emu: Emulator) -> str:
    bps = emu.faults.throttle_bps
    return f"each transfer capped at {bps / 1e6:.0f} MB/s" if bps else "loopback, unthrottled"


def bench_calls(data: Path) -> None:
    print("API calls per harvest (small scenes), login to logout (goal <= 12, flat in bands):")
    print("  scenes  bands  calls  by endpoint")
    with Emulator(data, scenes=220, seed=7) as emu:
        for scenes in (10, 100):
            for bands in (["red"], TEN_BANDS):
                with tempfile.TemporaryDirectory() as tmp, M2MClient(CREDENTIALS, emu.service_url) as api:
                    selection = Selection(
                        DATASET, dt.date(2000, 1, 1), dt.date(2030, 1, 1), bbox="-180,-85,180,85"
                    )
                    options = HarvestOptions(
                        out=Path(tmp),
                        selection=selection,
                        mode="bands",
                        bands=bands,
                        max_scenes=scenes,
                        poll_interval=0.2,
                        browse=False,
                    )
                    Harvest(api, options).run()
                calls = dict(sorted(api.calls.items()))  # read after the with block: logout counts
                print(f"  {scenes:6d} {len(bands):6d} {sum(calls.values()):6d}  {calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of harvest and curl (medians)")
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "stacmirror" / "bench-emulator")
    parser.add_argument("--store", action="store_true", help="also harvest into S3 (moto) against disk")
    parser.add_argument("--store-only", action="store_true", help="only the object-store figures")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the baseline (apt-get install curl)")
    with Emulator(args.data, full_size=True) as emu:
        scenes = newest_scenes(emu, args.scenes)
        print(f"preparing {len(scenes)} full-size scenes under {args.data} (cached after the first run)")
        warm(emu, scenes)
        if args.store or args.store_only:
            emu.faults.throttle_bps = 25_000_000
            bench_store(emu, scenes, args.workers, args.repeat)
            emu.faults.throttle_bps = 0
            if args.store_only:
                return
        bench_throughput(emu, scenes, args.workers, args.repeat, "loopback, unthrottled (CPU-bound)", 1.10)
        emu.faults.throttle_bps = 25_000_000  # each transfer at most 25 MB/s, like a real network link
        bench_throughput(emu, scenes, args.workers, args.repeat, "each transfer capped at 25 MB/s", 1.02)
        emu.faults.throttle_bps = 0
        bench_memory(emu, scenes[0], args.repeat)
    bench_calls(args.data)


if __name__ == "__main__":
    main()
