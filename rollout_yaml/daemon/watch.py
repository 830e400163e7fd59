"""Watches the files an environment is made of and reloads after a change settles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

log = logging.getLogger("rollout_yaml.daemon")

SETTLE_SECONDS = 0.1
WATCHED_SUFFIXES = (".yaml", ".yml", ".env")
IGNORED_FOLDERS = frozenset({".rollout", ".git", "__pycache__"})
CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})


class _Handler(FileSystemEventHandler):
    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return  # reading the files (opened, closed without writing) is no change
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = str(raw)
            if not path or IGNORED_FOLDERS & set(Path(path).parts):
                continue  # the database and logs change all the time; they are not config
            structural = event.is_directory and event.event_type in ("created", "deleted", "moved")
            if path.endswith(WATCHED_SUFFIXES) or structural:
                self._notify(path)
                return


def watched_folders(root: Path, env_dir: Path, release: str) -> list[Path]:
    """What an environment is made of. A frozen one runs `release/` inside its own folder
    (a `git pull` that brings a promotion rewrites it); the project's `connectors/` and
    `automations/` are the live environments' business, so edits there do not reload it."""
    if release == "frozen":
        return [env_dir]
    return [root / "connectors", root / "automations", env_dir]


class Watcher:
    """Calls `reload` once a burst of changes has been quiet for `settle` seconds."""

    def __init__(
        self,
        folders: list[Path],
        reload: Callable[[], Awaitable[None]],
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

    def _changed_in_thread(self, path: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed, path)

    def _changed(self, path: str) -> None:
        log.debug("changed: %s", path)
        if self._observer is not None and Path(path).parent in self._folders:
            self._watch_new_folders()  # a folder created at the top (a new `release/`)
        if self._pending is not None:
            self._pending.cancel()
        assert self._loop is not None
        self._pending = self._loop.call_later(self._settle, self._fire)

    def _fire(self) -> None:
        self._pending = None
        if self._running is not None and not self._running.done():
            self._again = True  # reload again when the current one ends
            return
        self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._reload()
            except Exception:
                log.exception("reload failed")
            if not self._again:
                return
