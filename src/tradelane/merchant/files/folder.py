"""A drop folder on the local filesystem: ``inbox/`` (where the merchant drops files), ``processed/``
and ``rejected/`` (where tradelane moves them, each with a sidecar report).

Contracts:

* A file still being written is never taken: names ending in :data:`PARTIAL_SUFFIX` (``.tmp``) and
  hidden names (``.``-prefixed) are ignored — writers should write ``x.csv.tmp`` then rename it to
  ``x.csv`` — and any other file modified less than ``settle_seconds`` ago is left for the next scan.
* :meth:`DropFolder.pending` lists the files to take, oldest modification first (then by name).
* :meth:`DropFolder.move` is atomic and never overwrites: the file keeps its name in the target
  directory, or gets ``.1``, ``.2``... before its extension when that name is taken.
* Sidecars (``<name>.result.json`` / ``<name>.error.txt``) are written to a temporary name and renamed,
  so a reader never sees half of one.
* :meth:`DropFolder.lock` is an exclusive, non-blocking ``flock`` on ``<folder>/.tradelane.lock``: two
  scans of one folder (two workers on one host, or hosts sharing a filesystem with working locks) never
  take the same file.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INBOX = "inbox"
PROCESSED = "processed"
REJECTED = "rejected"
PARTIAL_SUFFIX = ".tmp"
LOCK_NAME = ".tradelane.lock"
_MAX_NAME_TRIES = 10_000


@dataclass(frozen=True, slots=True)
class DropFolder:
    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / INBOX

    @property
    def processed(self) -> Path:
        return self.root / PROCESSED

    @property
    def rejected(self) -> Path:
        return self.root / REJECTED

    def prepare(self, *, create_root: bool) -> None:
        """Create ``inbox/``, ``processed/`` and ``rejected/`` (and the folder itself when
        ``create_root``); :class:`FileNotFoundError` when the folder is missing and not to be created
        (e.g. an unmounted share: nothing is written to the mount point)."""
        if create_root:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise FileNotFoundError(f"drop folder {self.root} does not exist")
        for directory in (self.inbox, self.processed, self.rejected):
            directory.mkdir(exist_ok=True)

    def pending(self, *, settle_seconds: float, wall_now: float) -> list[Path]:
        """Regular files of ``inbox/`` ready to take, oldest first (see the module docstring).
        ``wall_now`` is the current time as :func:`time.time` gives it (file times are wall-clock)."""
        found: list[tuple[float, str, Path]] = []
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.endswith(PARTIAL_SUFFIX):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:  # removed while listing
                    continue
                if wall_now - modified < settle_seconds:
                    continue
                found.append((modified, name, Path(entry.path)))
        found.sort(key=lambda item: (item[0], item[1]))
        return [path for _, _, path in found]

    def move(self, source: Path, directory: Path) -> Path:
        """Move ``source`` into ``directory`` atomically, under a free name; returns the new path."""
        for attempt in range(_MAX_NAME_TRIES):
            target = directory / _numbered(source.name, attempt)
            try:
                os.link(source, target)  # fails if the target exists: no overwrite, ever
            except FileExistsError:
                continue
            except OSError:  # no hard links on this filesystem: check, then rename
                if target.exists():
                    continue
                os.replace(source, target)
                return target
            os.unlink(source)
            return target
        raise FileExistsError(f"no free name for {source.name} in {directory}")

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold the folder's scan lock; yields False (holding nothing) when another scan has it."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _numbered(name: str, attempt: int) -> str:
    """``name``, then ``stem.1.ext``, ``stem.2.ext``..."""
    if attempt == 0:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.{attempt}"
    return f"{stem}.{attempt}.{ext}"


def sidecar(path: Path, suffix: str) -> Path:
    """The report next to ``path``: ``<name><suffix>`` (e.g. ``stock.csv.result.json``)."""
    return path.with_name(path.name + suffix)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary sibling and a rename."""
    temporary = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
