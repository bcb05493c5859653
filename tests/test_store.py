"""Mirrors in an object store: harvest straight into a real S3-protocol server (moto's server mode on
127.0.0.1), bands and bundles, a second machine, kill -9 and resume, the lock, faults, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from stacmirror.emulator import Faults
from stacmirror.errors import InvalidInput, MirrorBusy
from stacmirror.ledger import Ledger
from stacmirror.storage import StoreMirror

from . import s3 as s3h
from .helpers import STACMIRROR, cli_env, harvest_argv, run_harvest

pytest.importorskip("moto", reason="moto[server] is a test extra: pip install -e '.[test]'")


def _matches_emulator(emu, found: dict[str, bytes]) -> int:
    """Every object named like a Level-2 product file holds what the emulator serves for it; how
    many were checked."""
    checked = 0
    for scene in emu.service.scenes:
        if scene.l2_generated is None:
            continue
        for pfile in emu.service.store.files(scene, 2).values():
            for key, data in found.items():
                if key.endswith("/" + pfile.name):
                    assert hashlib.sha256(data).hexdigest() == pfile.sha256, key
                    checked += 1
    return checked


def _state_free(found: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in found.items() if not k.startswith(".stacmirror/")}


def _disk(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".stacmirror" not in p.relative_to(out).parts
    }


@pytest.mark.parametrize("mode", ["bands", "bundle"])
def test_harvest_into_the_store_equals_the_same_harvest_on_disk(
    emulator, moto, bucket: str, tmp_path: Path, mode: str
) -> None:
    kwargs = {"mode": "bands", "bands": ["red", "QA_PIXEL", "MTL"]} if mode == "bands" else {"mode": "bundle"}
    url = f"s3://{bucket}/landsat/py"
    summary, _ = run_harvest(emulator, url, max_scenes=2, **kwargs)
    assert summary.files_failed == 0 and summary.files_downloaded > 0
    disk = tmp_path / "disk"
    local, _ = run_harvest(emulator, disk, max_scenes=2, **kwargs)
    client = moto.client()
    found = s3h.objects(client, bucket, "landsat/py")
    assert _state_free(found) == _disk(disk)  # same keys, same bytes, file by file
    if mode == "bundle":
        assert not any(k.endswith(".tar") for k in found)  # unpacked while streaming, no tar kept
        assert sum(k.endswith(".TIF") for k in found) > 10
    with Ledger(StoreMirror(url, None).local) as ledger:  # the ledger knows each object and its sha256
        records = {r.path: r for r in ledger.all_files() if r.kind != "bundle"}
    assert set(records) == {k for k in found if not k.startswith(".stacmirror/")}
    for key, record in records.items():
        assert record.state == "done" and record.sha256 == hashlib.sha256(found[key]).hexdigest()
    assert ".stacmirror/ledger.sqlite" in found and ".stacmirror/lock" not in found
    assert s3h.open_uploads(client, bucket) == []  # every multipart upload completed
    cache = StoreMirror(url, None).cache
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix in (".TIF", ".txt", ".jpg")]


def test_a_second_machine_continues_from_the_state_in_the_store(
    emulator, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{bucket}/m"
    first, _ = run_harvest(emulator, url, mode="bands", bands=["red", "MTL"], max_scenes=2)
    assert first.files_downloaded == 2 * 4  # red and the three MTL files
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-machine"))
    again, client = run_harvest(emulator, url, mode="bands", bands=["red", "MTL"], max_scenes=2)
    assert again.files_downloaded == 0 and again.scenes_complete_before == 2
    assert "download-request" not in client.calls
    more, _ = run_harvest(emulator, url, mode="bands", bands=["red", "MTL"], max_scenes=3)
    assert more.files_downloaded == 4 and more.scenes_complete_before == 2


def test_a_deleted_object_is_fetched_again(emulator, moto, bucket: str) -> None:
    url = f"s3://{bucket}/m"
    run_harvest(emulator, url, mode="bands", bands=["red", "MTL"], max_scenes=1)
    client = moto.client()
    key = next(k for k in s3h.objects(client, bucket, "m") if k.endswith("_SR_B4.TIF"))
    client.delete_object(Bucket=bucket, Key=f"m/{key}")
    again, _ = run_harvest(emulator, url, mode="bands", bands=["red", "MTL"], max_scenes=1)
    assert again.files_downloaded == 1
    assert key in s3h.objects(client, bucket, "m")


def test_kill_9_three_times_resumes_with_few_extra_bytes(make_emulator, moto, bucket: str) -> None:
    url = f"s3://{bucket}/killed"
    kill_9_three_times_and_resume(make_emulator, url, lambda: s3h.objects(moto.client(), bucket, "killed"))


def kill_9_three_times_and_resume(make_emulator, url: str, objects) -> None:
    """A throttled harvest into the store at ``url`` killed with -9 three times mid-transfer, each
    time once a file landed, then run to the end: every file whole, few bytes fetched twice, no
    lock left. ``objects()`` lists the store under the mirror (key → bytes). Shared by every kind
    of store."""
    emu = make_emulator(Faults(throttle_bps=400_000))
    common = ["--max-scenes", "3", "--no-catalog", "--no-browse", "--workers", "2", "--poll-interval", "0.1"]
    argv = harvest_argv(url, *common, "--mode", "bands", "--bands", "red,green,blue,nir08,MTL", "--quiet")
    env = cli_env(emu)
    kills = 0
    for _ in range(3):
        before = len(objects())
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if len(objects()) > before + 1:  # a file landed since the start
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=20)
    assert kills == 3, "each run was killed mid-transfer"
    emu.faults.throttle_bps = 0
    result = subprocess.run(argv[:-1] + ["--json"], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["filesFailed"] == 0
    found = _state_free(objects())
    served = {}
    for scene in emu.service.scenes:
        if scene.l2_generated is not None:
            for pfile in emu.service.store.files(scene, 2).values():
                served[pfile.name] = pfile
    assert len(found) == 3 * 7  # four bands and the three MTL files
    total, largest = 0, 0
    for key, data in found.items():
        pfile = served[key.rsplit("/", 1)[-1]]
        assert hashlib.sha256(data).hexdigest() == pfile.sha256, key
        total, largest = total + pfile.size, max(largest, pfile.size)
    # the objects completed before each kill were kept: only the files in flight at a kill (two
    # workers) came again, from their first byte (an upload cut by kill -9 cannot be taken up)
    assert emu.service.stats["file_bytes"] <= total + kills * 2 * largest, (emu.service.stats, total)
    assert ".stacmirror/lock" not in objects()


def test_a_second_harvest_into_the_same_store_is_refused(emulator, moto, bucket: str) -> None:
    client = moto.client()
    holder = {"host": "another-machine", "pid": 4242, "since": time.time()}
    client.put_object(Bucket=bucket, Key="busy/.stacmirror/lock", Body=json.dumps(holder).encode())
    result = subprocess.run(
        harvest_argv(f"s3://{bucket}/busy", "--no-catalog"),
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "another harvest" in result.stderr, result.stderr
    assert "another-machine" in result.stderr
    assert emulator.service.stats["requests"] == 0
    assert set(s3h.objects(client, bucket, "busy")) == {".stacmirror/lock"}


def test_a_lock_left_by_a_dead_process_here_is_taken_over(emulator, moto, bucket: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = {"host": socket.gethostname(), "pid": dead.pid, "since": time.time()}
    client = moto.client()
    client.put_object(Bucket=bucket, Key="m/.stacmirror/lock", Body=json.dumps(holder).encode())
    summary, _ = run_harvest(emulator, f"s3://{bucket}/m", mode="bands", bands=["MTL"], max_scenes=1)
    assert summary.files_failed == 0 and summary.files_downloaded >= 1
    assert ".stacmirror/lock" not in s3h.objects(client, bucket, "m")


def test_a_live_lock_object_refuses_the_library_too(emulator, bucket: str) -> None:
    import threading

    mirror = StoreMirror.open(f"s3://{bucket}/m")
    holder = threading.Thread(target=mirror.acquire)  # another thread: the lock is not re-entrant there
    holder.start()
    holder.join()
    try:
        with pytest.raises(MirrorBusy):
            run_harvest(emulator, f"s3://{bucket}/m", mode="bands", bands=["MTL"], max_scenes=1)
    finally:
        releaser = threading.Thread(target=mirror.release)
        releaser.start()
        releaser.join()
    assert StoreMirror.open(f"s3://{bucket}/m").get_bytes(".stacmirror/lock") is None


def test_an_unsafe_bundle_member_completes_no_object(emulator, moto, bucket: str) -> None:
    import io
    import tarfile

    from stacmirror.harvester.bundle import UnsafeArchiveError
    from stacmirror.harvester.upload import BundleUpload

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name in ("LC08_B1.TIF", "../escape.TIF"):
            info = tarfile.TarInfo(name)
            info.size = 6 << 20
            archive.addfile(info, io.BytesIO(b"x" * info.size))
    body = data.getvalue()
    sink = BundleUpload(StoreMirror.open(f"s3://{bucket}/u").store, "scene", "scene.tar")
    sink.begin(0, hashlib.sha256())
    for start in range(0, len(body), 1 << 20):
        sink.write(body[start : start + (1 << 20)])
    with pytest.raises(UnsafeArchiveError, match="outside"):
        sink.commit()
    client = moto.client()
    assert s3h.objects(client, bucket, "u") == {}
    assert s3h.open_uploads(client, bucket) == []


def harvest_through(proxy, monkeypatch: pytest.MonkeyPatch, variable: str, emulator, url: str, **kwargs):
    """A harvest into ``url`` with the store's endpoint ``variable`` pointed at ``proxy``, which is
    stopped after it (the variable is left as the test's monkeypatch restores it)."""
    try:
        monkeypatch.setenv(variable, proxy.url)
        summary, _ = run_harvest(emulator, url, **kwargs)
    finally:
        proxy.stop()
    return summary


def test_a_store_that_answers_503_or_drops_connections_loses_nothing(
    emulator, moto, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty_store_loses_nothing(
        emulator, monkeypatch, moto.port, "AWS_ENDPOINT_URL", f"s3://{bucket}/faulty",
        lambda: s3h.objects(moto.client(), bucket, "faulty"),
    )  # fmt: skip


def faulty_store_loses_nothing(emulator, monkeypatch, port: int, variable: str, url: str, objects) -> None:
    """A harvest into ``url`` while every fourth request to the store on ``port`` (its endpoint in
    ``variable``) gets a 503 or a dropped connection: nothing failed, every file whole. ``objects()``
    lists the store under the mirror (key -> bytes). Shared by every kind of store."""
    proxy = s3h.FaultyProxy(port, every=4)
    summary = harvest_through(
        proxy,
        monkeypatch,
        variable,
        emulator,
        url,
        mode="bands",
        bands=["red", "QA_PIXEL", "MTL"],
        max_scenes=2,
    )
    assert proxy.hits["faults"] >= 5
    assert summary.files_failed == 0
    found = _state_free(objects())
    assert len(found) == 2 * 5 + 2  # two bands, three MTL files, a browse image
    assert _matches_emulator(emulator, found) == 2 * 5


def _refusing(count: int, suffix: str):
    """A ``refuse`` rule for FaultyProxy: the first ``count`` uploads of an object named ``suffix``."""
    left = {"n": count}

    def refuse(method: str, path: str) -> bool:
        if method == "PUT" and path.split("?")[0].endswith(suffix) and left["n"] > 0:
            left["n"] -= 1
            return True
        return False

    return refuse


def test_an_upload_the_store_refuses_after_verification_is_fetched_again(
    emulator, moto, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's upload completes while its worker fetches the next one; when the store refuses that
    completion, the file is fetched again from its first byte and lands, and the run reports no
    failure."""
    proxy = s3h.FaultyProxy(moto.port, refuse=_refusing(1, "_SR_B4.TIF"))
    summary = harvest_through(
        proxy, monkeypatch, "AWS_ENDPOINT_URL", emulator, f"s3://{bucket}/refused",
        mode="bands", bands=["red", "MTL"], max_scenes=1,
    )  # fmt: skip
    assert proxy.hits["refused"] == 1
    assert summary.files_failed == 0 and summary.files_downloaded == 4  # the band, three MTL files
    found = _state_free(s3h.objects(moto.client(), bucket, "refused"))
    assert _matches_emulator(emulator, found) == 4
    band = next(v for k, v in found.items() if k.endswith("_SR_B4.TIF"))
    products = sum(
        len(v) for k, v in found.items() if k.endswith((".TIF", "_MTL.txt", "_MTL.xml", "_MTL.json"))
    )
    assert emulator.service.stats["file_bytes"] >= products + len(band)  # the band came twice
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    with Ledger.snapshot(StoreMirror.open(f"s3://{bucket}/refused").local) as ledger:
        assert all(r.state == "done" for r in ledger.all_files())


def test_an_upload_the_store_refuses_twice_fails_that_file_only(
    emulator, moto, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = s3h.FaultyProxy(moto.port, refuse=_refusing(2, "_SR_B4.TIF"))
    summary = harvest_through(
        proxy, monkeypatch, "AWS_ENDPOINT_URL", emulator, f"s3://{bucket}/refused",
        mode="bands", bands=["red", "MTL"], max_scenes=1,
    )  # fmt: skip
    assert summary.files_failed == 1 and summary.files_downloaded == 3
    assert len(summary.failures) == 1 and "did not take" in summary.failures[0], summary.failures
    client = moto.client()
    found = _state_free(s3h.objects(client, bucket, "refused"))
    assert not any(k.endswith("_SR_B4.TIF") for k in found) and len(found) == 4  # MTLs, browse
    assert s3h.open_uploads(client, bucket) == []


# -- bad input: one line, exit 2, nothing written --------------------------------------------------


def _refused(argv_out: str, emulator, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        harvest_argv(argv_out, "--no-catalog"),
        env=cli_env(emulator, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result


def test_an_unknown_scheme_is_refused(emulator) -> None:
    result = _refused("ftp://host/mirror", emulator)
    assert "unknown scheme ftp://" in result.stderr


def test_a_missing_bucket_is_refused(emulator, moto, bucket: str) -> None:
    result = _refused("s3://no-such-bucket-here/m", emulator)
    assert "bucket does not exist" in result.stderr
    assert emulator.service.stats["requests"] == 0


def test_a_prefix_holding_other_things_is_refused(emulator, moto, bucket: str) -> None:
    client = moto.client()
    client.put_object(Bucket=bucket, Key="theirs/report.pdf", Body=b"%PDF")
    result = _refused(f"s3://{bucket}/theirs", emulator)
    assert "no mirror" in result.stderr and "report.pdf" in result.stderr
    assert set(s3h.objects(client, bucket, "theirs")) == {"report.pdf"}


def test_keep_tar_is_refused_for_a_store(emulator, bucket: str) -> None:
    with pytest.raises(InvalidInput, match="keep_tar"):
        run_harvest(emulator, f"s3://{bucket}/m", keep_tar=True)


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory: pytest.TempPathFactory):
    """A moto server that checks credentials and IAM policies after the first four (set-up) requests:
    a bucket and a read-only user."""
    server = s3h.MotoServer(
        tmp_path_factory.mktemp("moto-auth") / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="4"
    )
    server.client().create_bucket(Bucket="guarded")
    iam = server.client("iam")
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
    }
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
    server.reader = iam.create_access_key(UserName="reader")["AccessKey"]
    yield server
    server.stop()


def _aws(server, key: str, secret: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": s3h.REGION,
        "AWS_ENDPOINT_URL": server.url,
    }


def test_wrong_credentials_are_refused_without_printing_them(emulator, auth_moto) -> None:
    secret = "wrong-secret-" + uuid.uuid4().hex
    result = _refused("s3://guarded/m", emulator, **_aws(auth_moto, "AKIAWRONGWRONGWRONG1", secret))
    assert "credentials" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_no_permission_to_write_is_refused_and_writes_nothing(emulator, auth_moto) -> None:
    reader = auth_moto.reader
    env = _aws(auth_moto, reader["AccessKeyId"], reader["SecretAccessKey"])
    result = _refused("s3://guarded/m", emulator, **env)
    assert "no permission to write" in result.stderr, result.stderr
    assert reader["SecretAccessKey"] not in result.stderr
    listing = auth_moto.client(key=reader["AccessKeyId"], secret=reader["SecretAccessKey"]).list_objects_v2(
        Bucket="guarded"
    )
    assert listing.get("KeyCount", 0) == 0
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") != reader["SecretAccessKey"]


def test_the_credentials_never_reach_results_or_reprs(emulator, bucket: str) -> None:
    summary, _ = run_harvest(emulator, f"s3://{bucket}/m", mode="bands", bands=["MTL"], max_scenes=1)
    text = json.dumps(summary.to_dict()) + repr(StoreMirror.open(f"s3://{bucket}/m"))
    assert f"s3://{bucket}/m" in text
    assert s3h.SECRET not in text and s3h.KEY not in text


def test_doctor_refuses_a_store_url_for_free_space(tmp_path: Path) -> None:
    result = subprocess.run(
        [*STACMIRROR, "doctor", "--out", "s3://bucket/mirror"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "takes a folder here, not an object store" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []  # no folder named s3: made by mistake


def test_subscriptions_of_a_store_mirror_are_listed_and_removed(
    emulator, bucket: str, tmp_path: Path, monkeypatch
) -> None:
    import stacmirror

    url = f"s3://{bucket}/subs"
    run_harvest(emulator, url, mode="bands", bands=["MTL"], max_scenes=1)
    found = stacmirror.subscriptions(url)
    assert [s.id for s in found] == [1] and found[0].scenes == 1
    listed = subprocess.run(
        [*STACMIRROR, "subscriptions", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )
    assert listed.returncode == 0 and [s["id"] for s in json.loads(listed.stdout)] == [1], listed.stderr
    assert stacmirror.remove_subscription(url, 1).id == 1
    monkeypatch.setenv("STACMIRROR_CACHE", str(tmp_path / "another-machine"))  # the removal was pushed
    assert stacmirror.subscriptions(url) == []
    with pytest.raises(InvalidInput, match="no ledger"):
        stacmirror.subscriptions(f"s3://{bucket}/empty")


def test_a_cut_download_resumes_into_the_open_upload(make_emulator, moto, bucket: str) -> None:
    emu = make_emulator(Faults(file_cut_every=2))
    summary, _ = run_harvest(emu, f"s3://{bucket}/cut", mode="bands", bands=["red", "QA_PIXEL"], max_scenes=2)
    assert summary.files_failed == 0
    assert emu.service.stats["range_requests"] > 0  # the cut bodies went on with Range, same upload
    found = _state_free(s3h.objects(moto.client(), bucket, "cut"))
    assert _matches_emulator(emu, found) == 4
    assert s3h.open_uploads(moto.client(), bucket) == []


def test_the_state_is_pulled_only_when_the_store_holds_another_one(emulator, bucket: str) -> None:
    url = f"s3://{bucket}/state"
    run_harvest(emulator, url, mode="bands", bands=["MTL"], max_scenes=1)
    mirror = StoreMirror.open(url)
    ledger = mirror.local.ledger_path
    before = ledger.stat().st_mtime_ns
    mirror.pull_state()  # the cache holds what it pushed: one conditional GET, answered 304
    assert ledger.stat().st_mtime_ns == before
    mirror.put_bytes(".stacmirror/ledger.sqlite", b"x" + ledger.read_bytes()[1:])  # another machine pushed
    mirror.pull_state()
    assert ledger.read_bytes()[:1] == b"x"
