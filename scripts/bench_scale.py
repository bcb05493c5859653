#!/usr/bin/env python3
"""Scale benchmark (not a test): full and no-op catalog builds of metadata-only mirrors.

Synthesises mirrors of 1 000, 10 000 and 100 000 scenes (each an MTL.txt with the real Level-2
structure, at varied WRS-2 path/rows and dates; cached under --data) and for each size prints the
full build time, items/s, the peak RSS of the catalog writer (getrusage) and of its largest worker
process (sampled from /proc every 0.25 s), the
no-op rebuild time (and its share of the full build; goal <= 5 %), the files written, and the
largest number of links in any catalog node (goal <= 1 000). Each build runs in a fresh process.
The baseline is the full build itself: the no-op must cost a small fraction of it.

It also times writing the collection's items.parquet on its own, merging 10 changed items into
it (the incremental path; baseline: that full write), and `stacmirror query` (area +
dates + cloud) on it in a fresh process, first call and median of five, against a brute-force scan
of the item JSON files measured in the same run (which must find the same items), and the STAC
API of `stacmirror serve` over HTTP: the first and a middle page of an unfiltered search (the
middle one reached as a user reaches it, by the next link of the page before), and the
same area + dates + cloud search followed through every page (which must also find them).
`--search-only` times only the parquet, the query and the API, on catalogs already built.
`--store` also puts each size's MTL files into an S3 store (moto's server on 127.0.0.1, started
here; a test extra) and times the same full and no-op builds, query and API there, each printed
against the disk's figure for the same size in the same run.

Usage: .venv/bin/python scripts/bench_scale.py [--sizes 1000,10000,100000 | --sizes 1000000] [--workers N]
       [--data DIR]
       [--search-only] [--store]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BUILD = """
import json, resource, sys, time
from stacmirror.catalog.build import build_catalog
workers = int(sys.argv[2]) if sys.argv[2] != "0" else None
started = time.perf_counter()
result = build_catalog(sys.argv[1], workers=workers, force=sys.argv[3] == "force")
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "written": result.written,
    "unchanged": result.unchanged,
    "parents": result.parents_written,
    "errors": len(result.errors),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


QUERY = """
import json, statistics, sys, time
started = time.perf_counter()
from stacmirror.offline_search import search
imported = time.perf_counter() - started
filters = dict(bbox="-100,20,-60,50", start="2015-01-01", end="2019-12-31", cloud_max=40)
times = []
for _ in range(6):
    started = time.perf_counter()
    found = search(sys.argv[1], **filters)
    times.append(time.perf_counter() - started)
median = statistics.median(times[1:])
print(json.dumps({"import": imported, "first": times[0], "median": median, "ids": sorted(found.ids)}))
"""

MERGE = """
import json, resource, sys, time
from stacmirror.catalog import parquet
from stacmirror.catalog.state import CatalogState
from stacmirror.layout import Mirror
mirror = Mirror(sys.argv[1])
state = CatalogState(mirror)
# ten items spread over the collection marked rewritten, as state.put() marks them (done in SQL
# here so the benchmark's own memory stays out of the figure)
state._db.execute(
    "INSERT OR REPLACE INTO parquet_pending SELECT item, dataset FROM scenes WHERE dataset=? "
    "AND rowid % (SELECT MAX(1, COUNT(*) / 10) FROM scenes) = 0 LIMIT 10", ("landsat_ot_c2_l2",)
)
rewrites, merges = [], []
real, real_merge = parquet._rewrite, parquet._merge
parquet._rewrite = lambda *a: rewrites.append(1) or real(*a)
parquet._merge = lambda *a: merges.append(1) or real_merge(*a)
started = time.perf_counter()
parquet.write_items_parquet(mirror, state, "landsat_ot_c2_l2")
print(json.dumps({"seconds": time.perf_counter() - started, "merged": not rewrites, "partitions": len(merges),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

API = """
import json, statistics, sys, threading, time
import requests
from pathlib import Path
from stacmirror.serve.server import ServeServer
server = ServeServer(sys.argv[1] if "://" in sys.argv[1] else Path(sys.argv[1]), None, port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
api = server.base_url + "/api/search"
def timed(method, url, **kwargs):
    started = time.perf_counter()
    page = getattr(requests, method)(url, timeout=600, **kwargs).json()
    return time.perf_counter() - started, page
first, page = timed("get", api, params={"limit": 100})
total = page["numberMatched"]
# the page halfway through as a user reaches it, by the next link (the last item's sort key) of
# the page before; that page itself is reached by position (p token), which is not timed
_, before = timed("get", api, params={"limit": 100, "token": f"p{total // 2 - 100}"})
middle, _ = timed("get", next(l["href"] for l in before["links"] if l["rel"] == "next"))
world, _ = timed("get", api, params={"limit": 100, "bbox": "-180,-90,180,90"})  # every item a candidate
small, _ = timed("get", api, params={"limit": 100, "bbox": "-75.2,39.8,-74.8,40.2"})  # a few candidates
request = {"bbox": [-100, 20, -60, 50], "datetime": "2015-01-01T00:00:00Z/2019-12-31T23:59:59Z",
           "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 40]}, "limit": 100}
pages, ids, body = [], [], request
while body is not None:
    seconds, page = timed("post", api, json=body)
    pages.append(seconds)
    ids += [f["id"] for f in page["features"]]
    body = next((l["body"] for l in page["links"] if l["rel"] == "next"), None)
print(json.dumps({"first": first, "middle": middle, "world": world, "small": small, "pages": len(pages),
                  "search_median": statistics.median(pages), "search_total": sum(pages), "ids": sorted(ids)}))
"""

PARQUET = """
import json, resource, sys, time
from stacmirror.catalog.parquet import remove_items_parquet, write_items_parquet
from stacmirror.catalog.state import CatalogState
from stacmirror.layout import Mirror
mirror = Mirror(sys.argv[1])
state = CatalogState(mirror)
remove_items_parquet(mirror.items_parquet("landsat_ot_c2_l2"))  # nothing to merge into: written whole
started = time.perf_counter()
rows = write_items_parquet(mirror, state, "landsat_ot_c2_l2")
print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def brute_force(out: Path) -> tuple[float, list[str]]:
    """The same query by reading every item file: the baseline."""
    import datetime as dt

    from shapely.geometry import box, shape

    from stacmirror.catalog.walk import item_files

    started = time.perf_counter()
    area = box(-100, 20, -60, 50)
    low = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)
    high = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    found = []
    for path in item_files(out / "landsat_ot_c2_l2" / "collection.json"):
        item = json.loads(path.read_text())
        props = item["properties"]
        when = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
        cloud = props.get("eo:cloud_cover")
        if (
            low <= when < high
            and cloud is not None
            and cloud <= 40
            and shape(item["geometry"]).intersects(area)
        ):
            found.append(item["id"])
    return time.perf_counter() - started, sorted(found)


def _run_json(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _synth_chunk(args: tuple[str, int, int]) -> int:
    from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror

    out, count, seed = args
    return write_metadata_mirror(Path(out), synthetic_records(count, seed=seed))


def synthesise(out: Path, size: int) -> None:
    marker = out / ".synthesised"
    if marker.exists():
        return
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    chunk = 2_000
    jobs = [(str(out), min(chunk, size - start), 1_000 + start) for start in range(0, size, chunk)]
    started = time.monotonic()
    with multiprocessing.Pool() as pool:
        written = sum(pool.imap_unordered(_synth_chunk, jobs))
    marker.write_text(str(written))
    print(f"  synthesised {written} scenes in {time.monotonic() - started:.0f} s", flush=True)


def _descendants(root: int) -> list[int]:
    """Processes below ``root`` (the pool's workers are children of its fork server)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            line = next(line for line in handle if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return 0.0


def _clear_catalog(out: Path) -> None:
    """Remove what a catalog build writes (items, catalogs, collections, state); keep the MTLs."""
    shutil.rmtree(out / ".stacmirror", ignore_errors=True)
    for folder, _, names in os.walk(out):
        for name in names:
            if name.endswith(".json") and not name.endswith("_MTL.json"):
                os.unlink(os.path.join(folder, name))


def build(out: Path | str, workers: int, force: bool, env: dict[str, str] | None = None) -> dict:
    """One build in a fresh process; its workers' peak RSS is sampled from /proc meanwhile."""
    args = [sys.executable, "-c", BUILD, str(out), str(workers), "force" if force else "incremental"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    worker_peak = 0.0
    while process.poll() is None:
        for pid in _descendants(process.pid):
            worker_peak = max(worker_peak, _rss_mb(pid))
        time.sleep(0.25)
    stdout, stderr = process.communicate()
    if process.returncode:
        raise RuntimeError(stderr[-2000:])
    report = json.loads(stdout.strip().splitlines()[-1])
    report["worker_rss_mb"] = worker_peak
    return report


def largest_node(out: Path) -> int:
    largest = 0
    for node in [
        out / "catalog.json",
        *out.glob("landsat_*/collection.json"),
        *out.glob("landsat_*/**/catalog*.json"),
    ]:
        links = json.loads(node.read_text())["links"]
        largest = max(largest, sum(1 for link in links if link["rel"] in ("child", "item")))
    return largest


def measure_search(out: Path) -> dict:
    """items.parquet written on its own, the offline query, the STAC API, and the brute-force scan."""
    parquet = _run_json(PARQUET, str(out))
    merge = _run_json(MERGE, str(out))
    assert merge["merged"], "10 changed items should be merged, not rewritten"
    query = _run_json(QUERY, str(out))
    api = _run_json(API, str(out))
    scan_seconds, scan_ids = brute_force(out)
    assert query["ids"] == scan_ids, "the query and the scan disagree"
    assert api["ids"] == scan_ids, "the STAC API and the scan disagree"
    print(
        f"  items.parquet written in {parquet['seconds']:.1f} s (peak RSS {parquet['rss_mb']:.0f} MB); "
        f"10 changed items merged into it ({merge['partitions']} partitions written) in "
        f"{merge['seconds']:.2f} s (peak RSS {merge['rss_mb']:.0f} MB) = "
        f"{parquet['seconds'] / merge['seconds']:.0f}x faster than the rewrite\n"
        f"  query ({len(scan_ids)} matches): first "
        f"{query['first'] * 1000:.0f} ms, median {query['median'] * 1000:.0f} ms (import "
        f"{query['import']:.1f} s); brute-force scan of the item files {scan_seconds:.1f} s = "
        f"{scan_seconds / query['median']:.0f}x slower\n"
        f"  STAC API: unfiltered search, first page {api['first'] * 1000:.0f} ms, middle page "
        f"{api['middle'] * 1000:.0f} ms; a page of a whole-world box {api['world'] * 1000:.0f} ms, of a "
        f"small box {api['small'] * 1000:.0f} ms (goal <= 300 ms each); the same query over "
        f"{api['pages']} page(s): median "
        f"{api['search_median'] * 1000:.0f} ms a page, {api['search_total']:.2f} s in all = "
        f"{scan_seconds / api['search_total']:.0f}x faster than the scan",
        flush=True,
    )
    return {
        "parquet_s": parquet["seconds"],
        "parquet_rss_mb": parquet["rss_mb"],
        "merge_s": merge["seconds"],
        "merge_rss_mb": merge["rss_mb"],
        "query_first_s": query["first"],
        "query_median_s": query["median"],
        "api_first_s": api["first"],
        "api_middle_s": api["middle"],
        "api_world_box_s": api["world"],
        "api_small_box_s": api["small"],
        "api_search_total_s": api["search_total"],
        "api_search_median_s": api["search_median"],
        "scan_s": scan_seconds,
        "matches": len(scan_ids),
        "ids": scan_ids,
    }


class StoreBench:
    """The same mirrors in an S3 store: moto's server on 127.0.0.1 (a test extra), started here."""

    def __init__(self, tmp: Path):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.s3 import KEY, REGION, SECRET, MotoServer

        self.tmp = tmp
        self.server = MotoServer(tmp / "moto.log")
        self.server.client().create_bucket(Bucket="bench")
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.server.url,
        }

    def upload(self, out: Path, size: int) -> str:
        """The mirror's MTL files (what a metadata-only harvest lands) under s3://bench/mirror-N; not
        timed. Returns the URL."""
        from concurrent.futures import ThreadPoolExecutor

        import obstore
        from obstore.store import S3Store

        store = S3Store(
            "bench",
            endpoint=self.server.url,
            access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region=self.env["AWS_REGION"],
            client_options={"allow_http": True},
        )
        prefix = f"mirror-{size}"
        files = [p for p in (out / "landsat_ot_c2_l2").rglob("*_MTL.txt")]
        started = time.monotonic()

        def put(path: Path) -> None:
            obstore.put(store, f"{prefix}/{path.relative_to(out)}", path.read_bytes())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))
        # what marks a prefix as a mirror: the state a harvest leaves, here an empty ledger (the disk
        # mirror has none either; the build goes by the files)
        from stacmirror.layout import Mirror
        from stacmirror.ledger import Ledger

        marker = Mirror(self.tmp / f"marker-{size}")
        marker.state_dir.mkdir(parents=True)
        Ledger(marker).close()
        obstore.put(store, f"{prefix}/.stacmirror/ledger.sqlite", marker.ledger_path.read_bytes())
        print(f"  store: {len(files)} MTL files uploaded in {time.monotonic() - started:.0f} s (not timed)")
        return f"s3://bench/{prefix}"

    def measure(self, out: Path, size: int, workers: int, disk: dict) -> dict:
        """Full and no-op build, query and API in the store, each against the disk's in this run."""
        url = self.upload(out, size)
        env = {**self.env, "STACMIRROR_CACHE": str(self.tmp / f"cache-{size}")}  # a fresh local cache
        full = build(url, workers, force=True, env=env)
        noop = build(url, workers, force=False, env=env)
        assert full["errors"] == 0 and full["written"] == size and noop["written"] == 0, (full, noop)
        query = _run_json(QUERY, url, env=env)
        api = _run_json(API, url, env=env)
        assert query["ids"] == disk["ids"] and api["ids"] == disk["ids"], "the store and the disk disagree"
        pairs = [
            ("full build", full["seconds"], disk["full_s"], "s"),
            ("no-op rebuild", noop["seconds"], disk["noop_s"], "s"),
            ("query first", query["first"], disk["query_first_s"], "ms"),
            ("query median", query["median"], disk["query_median_s"], "ms"),
            ("API first page", api["first"], disk["api_first_s"], "ms"),
            ("API middle page", api["middle"], disk["api_middle_s"], "ms"),
            ("API area page (median)", api["search_median"], disk["api_search_median_s"], "ms"),
        ]
        print(
            f"  store (moto on 127.0.0.1), against the disk in this run: writer peak RSS "
            f"{full['rss_mb']:.0f} MB (disk {disk['writer_rss_mb']:.0f} MB); no-op "
            f"{100 * noop['seconds'] / full['seconds']:.1f} % of the full build",
            flush=True,
        )
        for name, store_s, disk_s, unit in pairs:
            scale = 1000 if unit == "ms" else 1
            print(
                f"    {name}: store {store_s * scale:.{0 if unit == 'ms' else 1}f} {unit}, disk "
                f"{disk_s * scale:.{0 if unit == 'ms' else 1}f} {unit}, ratio {store_s / disk_s:.2f}",
                flush=True,
            )
        return {name: store_s / disk_s for name, store_s, disk_s, _ in pairs}

    def stop(self) -> None:
        self.server.stop()


def search_only(args: argparse.Namespace) -> None:
    print(
        "| scenes | items.parquet written (peak RSS) | 10 items merged (peak RSS) | query first / median "
        "| API page: first / middle | API search, all pages | brute-force scan |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        out = args.data / f"mirror-{size}"
        if not (out / "catalog.json").exists():
            sys.exit(f"{out} has no catalog: run without --search-only first")
        r = measure_search(out)
        print(
            f"| {size:,} | {r['parquet_s']:.1f} s ({r['parquet_rss_mb']:.0f} MB) "
            f"| {r['merge_s']:.2f} s ({r['merge_rss_mb']:.0f} MB) "
            f"| {r['query_first_s'] * 1000:.0f} / "
            f"{r['query_median_s'] * 1000:.0f} ms | {r['api_first_s'] * 1000:.0f} / "
            f"{r['api_middle_s'] * 1000:.0f} ms "
            f"| {r['api_search_total_s']:.2f} s ({r['matches']} items) | {r['scan_s']:.1f} s |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workers", type=int, default=0, help="0: stacmirror's default (the CPU count)")
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "stacmirror" / "bench-scale")
    parser.add_argument("--search-only", action="store_true", help="time the parquet, query and API only")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also each size in an S3 store (moto), against the disk's figures",
    )
    args = parser.parse_args()
    if args.search_only:
        search_only(args)
        return
    print(f"{os.cpu_count()} CPUs; workers: {args.workers or 'default'}")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        store = StoreBench(Path(tmp)) if args.store else None
        try:
            rows = measure_sizes(args, store)
        finally:
            if store is not None:
                store.stop()
    print_table(rows)


def measure_sizes(args: argparse.Namespace, store: StoreBench | None) -> list[dict]:
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = args.data / f"mirror-{size}"
        print(f"{size} scenes:", flush=True)
        synthesise(out, size)
        _clear_catalog(out)  # a full build from nothing: every item and parent is written
        full = build(out, args.workers, force=True)
        noop = build(out, args.workers, force=False)
        assert full["errors"] == 0 and noop["written"] == 0, (full, noop)
        row = {
            "scenes": size,
            "full_s": full["seconds"],
            "items_per_s": full["written"] / full["seconds"],
            "writer_rss_mb": full["rss_mb"],
            "worker_rss_mb": full["worker_rss_mb"],
            "noop_s": noop["seconds"],
            "noop_share": noop["seconds"] / full["seconds"],
            "files_written": full["written"] + full["parents"],
            "largest_node": largest_node(out),
        }
        print(  # before the search figures, which take long at a million items
            f"  full build {row['full_s']:.1f} s = {row['items_per_s']:.0f} items/s; peak RSS writer "
            f"{row['writer_rss_mb']:.0f} MB, workers {row['worker_rss_mb']:.0f} MB; no-op "
            f"{row['noop_s']:.2f} s = {100 * row['noop_share']:.1f} % of the full build; "
            f"{row['files_written']} files written; largest node {row['largest_node']} links",
            flush=True,
        )
        row.update(measure_search(out))
        if store is not None:
            store.measure(out, size, args.workers, row)
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "\n| scenes | full build | items/s | peak RSS (writer / worker) | no-op rebuild | files written "
        "| items.parquet | query first / median | brute-force scan |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scenes']:,} | {r['full_s']:.1f} s | {r['items_per_s']:.0f} | "
            f"{r['writer_rss_mb']:.0f} MB / {r['worker_rss_mb']:.0f} MB | "
            f"{r['noop_s']:.2f} s ({100 * r['noop_share']:.1f} %) | "
            f"{r['files_written']:,} | {r['parquet_s']:.1f} s | {r['query_first_s'] * 1000:.0f} / "
            f"{r['query_median_s'] * 1000:.0f} ms | {r['scan_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
