"""Watches the files an environment is made of and reloads after a change settles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

log = logging.getLogger("rollout_yaml.daemon")

SETTLE_SECONDS = 0.1
# One consumer file closed after writing (or renamed into place) is complete and stands alone:
# the reload need not wait out a whole burst window. Anything else (several files, a file still
# being written, a release rewritten by git) waits SETTLE_SECONDS of quiet.
SETTLE_ONE_CONSUMER = 0.02
COMPLETE = frozenset({"closed", "moved"})
WATCHED_SUFFIXES = (".yaml", ".yml", ".env")
IGNORED_FOLDERS = frozenset({".rollout", ".git", "__pycache__"})
CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})
MTIME_MARGIN = 0.05


class _Handler(FileSystemEventHandler):
    def __init__(self, notify: Callable[[str, bool], None]) -> None:
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return  # reading the files (opened, closed without writing) is no change
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = str(raw)
            if not path or IGNORED_FOLDERS & set(Path(path).parts):
                continue  # the database and logs change all the time; they are not config
            structural = event.is_directory and event.event_type in ("created", "deleted", "moved")
            if _is_config_file(path) or structural:
                self._notify(path, event.event_type in COMPLETE and not event.is_directory)
                return


def _is_config_file(path: str) -> bool:
    return path.endswith(WATCHED_SUFFIXES)


def _watched_files(folder: Path) -> Iterator[Path]:
    """The configuration files under `folder`, the ignored folders left unvisited."""
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if name not in IGNORED_FOLDERS]
        for name in files:
            if _is_config_file(name):
                yield Path(directory, name)


def watched_folders(root: Path, env_dir: Path, release: str) -> list[Path]:
    """What an environment is made of. A frozen one runs `release/` inside its own folder
    (a `git pull` that brings a promotion rewrites it); the project's `connectors/` and
    `automations/` are the live environments' business, so edits there do not reload it."""
    if release == "frozen":
        return [env_dir]
    return [root / "connectors", root / "automations", env_dir]


class Watcher:
    """Calls `reload` with the paths that changed once a burst of changes has been quiet for
    `settle` seconds."""

    def __init__(
        self,
        folders: list[Path],
        reload: Callable[[frozenset[Path]], Awaitable[None]],
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self._folders = [f for f in folders if f.is_dir()]
        self._reload = reload
        self._settle = settle
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._handler = _Handler(self._changed_in_thread)
        self._watched: dict[Path, ObservedWatch] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._again = False
        self._changes: set[Path] = set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        observer = Observer()
        self._observer = observer
        self._watch_new_folders()
        observer.daemon = True
        observer.start()

    def _watch_new_folders(self) -> None:
        """Watch each folder itself and, recursively, each subfolder except the ignored ones.

        `.rollout/` (the database, written hundreds of times a second) is never watched at all:
        a recursive watch would make the watcher's thread read an inotify event per write,
        which costs the event loop a third of its time under load.
        """
        assert self._observer is not None
        for folder in self._folders:
            wanted = [(folder, False)] + [
                (child, True)
                for child in sorted(folder.iterdir())
                if child.is_dir() and child.name not in IGNORED_FOLDERS
            ]
            for path, recursive in wanted:
                if path not in self._watched:
                    self._watched[path] = self._observer.schedule(
                        self._handler, str(path), recursive=recursive
                    )
        for path in [p for p in self._watched if not p.is_dir()]:  # removed: watch it again
            watch = self._watched.pop(path)  # if it comes back
            with contextlib.suppress(KeyError, OSError):
                self._observer.unschedule(watch)

    def catch_up(self, since: float) -> None:
        """Treat each watched file saved at or after `since` (a wall-clock time) as changed:
        saved between reading the configuration and starting to watch, it would otherwise be
        missed until its next save. The margin covers the file system's coarse timestamps; a
        file saved just before costs one needless reload."""
        for folder in self._folders:
            for path in _watched_files(folder):
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime >= since - MTIME_MARGIN:
                        self._changed(str(path), complete=True)

    def watch(self, folders: list[Path]) -> None:
        """Watch these folders from now on (an environment switched between live and frozen)."""
        wanted = [f for f in folders if f.is_dir()]
        if wanted == self._folders:
            return
        self._folders = wanted
        if self._observer is None:
            return
        self._observer.unschedule_all()
        self._watched.clear()
        self._watch_new_folders()
        log.info("watching %s", ", ".join(str(f) for f in wanted))

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._pending is not None:
            self._pending.cancel()

    def _changed_in_thread(self, path: str, complete: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed, path, complete)

    def _changed(self, path: str, complete: bool = False) -> None:
        log.debug("changed: %s", path)
        self._changes.add(Path(path))
        if self._observer is not None and Path(path).parent in self._folders:
            self._watch_new_folders()  # a folder created at the top (a new `release/`)
        if self._pending is not None:
            self._pending.cancel()
        assert self._loop is not None
        self._pending = self._loop.call_later(self._delay(complete), self._fire)

    def _delay(self, complete: bool) -> float:
        """How long to wait for more changes: short when the burst so far is one live consumer
        file that is fully written, the whole window otherwise."""
        if not complete or len(self._changes) != 1:
            return self._settle
        (changed,) = self._changes
        parts = changed.parts
        if "release" in parts or len(parts) < 2 or parts[-2] != "consumers":
            return self._settle
        return min(self._settle, SETTLE_ONE_CONSUMER)

    def _fire(self) -> None:
        self._pending = None
        if self._running is not None and not self._running.done():
            self._again = True  # reload again when the current one ends
            return
        self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            changes, self._changes = frozenset(self._changes), set()
            try:
                await self._reload(changes)
            except Exception:
                log.exception("reload failed")
            if not self._again:
                return
