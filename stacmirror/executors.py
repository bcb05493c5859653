"""Where parallel work runs: a ``concurrent.futures.Executor`` chosen from the caller's options.

A process pool by default (``workers`` processes, the CPU count unless told), the caller's own
executor, or an existing Dask cluster through ``distributed.Client(address).get_executor()`` (the
optional extra ``stacmirror[dask]``). Tasks are plain functions of plain data that return data;
the caller writes. We never build our own distribution.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from .errors import InvalidInput

IN_FLIGHT_PER_WORKER = 4  # tasks queued per worker: enough to keep it busy, bounded memory
PRELOAD = ["stacmirror.catalog.stac", "stacmirror.cropper.crop"]
ENVIRONMENT_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_", "GDAL_", "CPL_")


class InlineExecutor(Executor):
    """Runs each task when it is submitted, in this process (``workers=1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the caller sees it from future.result(), as with a pool
            future.set_exception(exc)
        return future


def check_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInput("workers", f"must be a whole number >= 1, got {workers!r}")
    return workers


@contextmanager
def executor_for(
    executor: Executor | None = None, *, workers: int | None = None, dask: str | None = None
) -> Iterator[tuple[Executor, int]]:
    """(executor, how many tasks to keep in flight), shut down afterwards if it was made here."""
    if executor is not None and dask is not None:
        raise InvalidInput("dask", "give an executor or a Dask scheduler address, not both")
    count = check_workers(workers)
    if executor is not None:
        yield executor, IN_FLIGHT_PER_WORKER * count
        return
    if dask is not None:
        with _dask_executor(dask) as (pool, cores):
            yield pool, IN_FLIGHT_PER_WORKER * cores
        return
    if count == 1:
        yield InlineExecutor(), 1
        return
    # forkserver: workers start from a clean process, not a fork of one that runs threads; the
    # server imports the heavy modules once, so each worker starts in milliseconds
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    if os.name == "posix":
        context.set_forkserver_preload(PRELOAD)
    # the fork server started with the environment of its time: the workers take the store's
    # credentials and endpoint (and GDAL's options) as they are now, when this pool starts
    current = {k: v for k, v in os.environ.items() if k.startswith(ENVIRONMENT_PREFIXES)}
    with ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=_adopt, initargs=(current,)
    ) as pool:
        yield pool, IN_FLIGHT_PER_WORKER * count


def _adopt(environment: dict[str, str]) -> None:
    """A pool worker's start: the parent's store and GDAL settings (``ENVIRONMENT_PREFIXES``)."""
    for name in [k for k in os.environ if k.startswith(ENVIRONMENT_PREFIXES)]:
        del os.environ[name]
    os.environ.update(environment)


@contextmanager
def _dask_executor(address: str) -> Iterator[tuple[Executor, int]]:
    try:
        from distributed import Client
    except ImportError:
        raise InvalidInput(
            "dask", "needs the optional extra: pip install 'stacmirror[dask]' (dask.distributed)"
        ) from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InvalidInput("dask", f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        cores = sum(client.nthreads().values()) or 1
        yield client.get_executor(), cores
    finally:
        client.close()
