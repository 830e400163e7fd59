"""Where a project's files live: finding the project folder and listing its files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")


def is_project(folder: Path) -> bool:
    return (folder / "connectors").is_dir() or (folder / "environments").is_dir()


def nearest_project(start: Path | None = None) -> Path | None:
    """The nearest folder, from `start` upwards, that holds `connectors/` or `environments/`."""
    here = (start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if is_project(folder)), None)


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def environments_dir(self) -> Path:
        return self.root / "environments"

    def env_dir(self, env: str) -> Path:
        return self.environments_dir / env

    def environments(self) -> list[str]:
        if not self.environments_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.environments_dir.iterdir() if (p / "environment.yaml").is_file()
        )

    def display(self, path: Path) -> str:
        """A path as users see it in diagnostics: relative to the project, with `/`."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


def yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
