"""Watches the files an environment is made of and reloads after a change settles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

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
        self._handler: _Handler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._again = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        observer = Observer()
        self._handler = _Handler(self._changed_in_thread)
        for folder in self._folders:
            observer.schedule(self._handler, str(folder), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def watch(self, folders: list[Path]) -> None:
        """Watch these folders from now on (an environment switched between live and frozen)."""
        wanted = [f for f in folders if f.is_dir()]
        if wanted == self._folders:
            return
        self._folders = wanted
        if self._observer is None:
            return
        self._observer.unschedule_all()
        for folder in wanted:
            self._observer.schedule(self._handler, str(folder), recursive=True)
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
