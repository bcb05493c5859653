"""Progress of a harvest: rich bars on a terminal, plain lines otherwise, nothing with --quiet."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class Reporter:
    """Plain lines on stderr (or nothing when quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                print(f"stacmirror: {message}", file=sys.stderr, flush=True)

    def start(self, files: int, total_bytes: int) -> None:
        self.note(f"fetching {files} file(s), {human(total_bytes)}")

    def file_started(self, key: str, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def file_done(self, key: str, name: str, size: int, resumed_from: int) -> None:
        extra = f" (resumed at {human(resumed_from)})" if resumed_from else ""
        self.note(f"verified {name} ({human(size)}){extra}")

    def stop(self) -> None:
        pass


class RichReporter(Reporter):
    """An overall bar (files, bytes, rate, ETA) and one bar per file in flight."""

    def __init__(self) -> None:
        super().__init__(False)
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._overall: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}
        self._files = (0, 0)

    def note(self, message: str) -> None:
        self.console.print(f"stacmirror: {message}", highlight=False)

    def start(self, files: int, total_bytes: int) -> None:
        self.progress.start()
        self._files = (0, files)
        self._overall = self.progress.add_task(f"files 0/{files}", total=total_bytes or None)

    def file_started(self, key: str, name: str, total: int | None, done: int) -> None:
        with self._lock:
            self._tasks[key] = self.progress.add_task(f"  {name[-48:]}", total=total, completed=done)
            if done and self._overall is not None:
                self.progress.advance(self._overall, done)

    def advance(self, key: str, amount: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self.progress.advance(task, amount)
        if self._overall is not None:
            self.progress.advance(self._overall, amount)

    def file_done(self, key: str, name: str, size: int, resumed_from: int) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is not None:
                self.progress.remove_task(task)
            done, total = self._files
            self._files = (done + 1, total)
            if self._overall is not None:
                self.progress.update(self._overall, description=f"files {done + 1}/{total}")

    def stop(self) -> None:
        if self._overall is not None:
            time.sleep(0.05)
            self.progress.stop()


def make_reporter(quiet: bool, as_json: bool) -> Reporter:
    if quiet:
        return Reporter(quiet=True)
    if sys.stderr.isatty() and not as_json:
        return RichReporter()
    return Reporter()
