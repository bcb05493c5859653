"""Rendering the library's events: rich bars on a terminal, plain lines otherwise, JSON lines with
``--json``, nothing with ``--quiet``. Everything goes to stderr; stdout is kept for results."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING

from .. import events as ev

if TYPE_CHECKING:
    from rich.progress import TaskID


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def describe(event: ev.Event) -> str | None:
    """The one line a person reads for an event, or None for events only bars show."""
    match event:
        case ev.Note(message=message) | ev.Waiting(message=message):
            return message
        case ev.FilesPlanned(files=files, bytes=size, dry_run=True):
            return f"dry run: {files} file(s), {human(size)}; nothing fetched"
        case ev.FilesPlanned(files=files, bytes=size):
            return f"fetching {files} file(s), {human(size)}"
        case ev.FileVerified(name=name, size=size, resumed_from=resumed):
            extra = f" (resumed at {human(resumed)})" if resumed else ""
            return f"verified {name} ({human(size)}){extra}"
        case ev.FileFailed(name=name, reason=reason):
            return f"FAILED {name}: {reason}"
        case ev.ItemFailed(reason=reason):
            return f"catalog: {reason}"
        case ev.ProductReplaced(old=old, new=new):
            return f"replaced {old} -> {new}"
        case ev.ProductGone(display_id=display_id, removed=removed):
            what = "removed (--prune)" if removed else "kept; --prune removes it"
            return f"{display_id} is no longer listed by the service: {what}"
        case ev.SubscriptionSearched(subscription=number, dataset=dataset, scenes=scenes):
            return f"subscription {number} ({dataset}): {scenes} scene(s) listed"
    return None


class Renderer:
    """Plain lines on stderr, one per event worth a line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: ev.Event) -> None:
        line = describe(event)
        if line is not None:
            with self._lock:
                print(f"stacmirror: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class QuietRenderer(Renderer):
    def __call__(self, event: ev.Event) -> None:
        return None


class JsonRenderer(Renderer):
    """One JSON object per event on stderr (byte counts are left out: the totals tell them)."""

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.BytesTransferred):
            return
        with self._lock:
            print(json.dumps(event.to_dict()), file=sys.stderr, flush=True)


class RichRenderer(Renderer):
    """An overall bar (files, bytes, rate, ETA) and one bar per file in flight; notes above them."""

    def __init__(self) -> None:
        # rich loads only for a terminal: --quiet, --json and piped runs start without it
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__()
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

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            match event:
                case ev.FilesPlanned(files=files, bytes=size, dry_run=False):
                    self.progress.start()
                    self._files = (0, files)
                    self._overall = self.progress.add_task(f"files 0/{files}", total=size or None)
                case ev.FileStarted(path=path, name=name, size=size, resumed_from=done):
                    self._tasks[path] = self.progress.add_task(f"  {name[-48:]}", total=size, completed=done)
                    if done and self._overall is not None:
                        self.progress.advance(self._overall, done)
                case ev.BytesTransferred(path=path, amount=amount):
                    task = self._tasks.get(path)
                    if task is not None:
                        self.progress.advance(task, amount)
                    if self._overall is not None:
                        self.progress.advance(self._overall, amount)
                case ev.FileVerified(path=path) | ev.FileFailed(path=path):
                    task = self._tasks.pop(path, None)
                    if task is not None:
                        self.progress.remove_task(task)
                    if isinstance(event, ev.FileVerified):
                        done, total = self._files
                        self._files = (done + 1, total)
                        if self._overall is not None:
                            self.progress.update(self._overall, description=f"files {done + 1}/{total}")
                case ev.TransfersDone():
                    self._stop()
            line = describe(event)
            if line is not None and not isinstance(event, ev.FileVerified):
                self.console.print(f"stacmirror: {line}", highlight=False)

    def _stop(self) -> None:
        if self._overall is not None:
            time.sleep(0.05)
            self.progress.stop()
            self._overall = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def make_renderer(quiet: bool, as_json: bool) -> Renderer:
    if quiet:
        return QuietRenderer()
    if as_json:
        return JsonRenderer()
    if sys.stderr.isatty():
        return RichRenderer()
    return Renderer()
