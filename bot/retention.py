"""What the output folder holds, and which of it may go: the file side of the disk budget and of
retention (the store's side, which rows go and which pictures jobs still need, is the service's).

``[storage] output_dir`` holds finished videos (``<job id>.mp4``), the pictures members animate
(``inputs/<random>.png``) and, for a moment, temporary files: encodes being written (hidden
``.*.part`` siblings) and smaller copies made for one upload (``<job id>.upload.mp4``). A crash can
leave temporary files behind, so all of it counts toward ``max_output_mb``, and leftovers older
than :data:`LEFTOVER_AGE_S` (all of them at start) are removed.

Files come and go while these functions look (an upload copy is deleted when its upload ends), so
one that vanishes between listing and ``stat`` is simply not there: nothing here raises
``FileNotFoundError``. Pure file work, no store and no event loop: the service runs it in a thread.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

INPUTS = "inputs"
"""The subfolder of ``output_dir`` that holds members' pictures."""
LEFTOVER_AGE_S = 3600.0
"""A temporary file older than this is a crash's leftover: no encode or upload takes an hour."""
PICTURE_GRACE_S = 3600.0
"""A picture younger than this may belong to a request being recorded right now (it is saved
before its job's row is written), so it is never taken as unused."""

_VIDEO = re.compile(r"^(?P<job>\d+)\.mp4$")


class FileKind(StrEnum):
    VIDEO = "video"
    """A finished job's video: deleted oldest first past the budget; its row is marked pruned."""
    PICTURE = "picture"
    """A member's picture in ``inputs/``."""
    TEMPORARY = "temporary"
    """An encode in progress (``.part``) or a copy made for one upload (``.upload.mp4``)."""
    OTHER = "other"
    """Anything else someone put there: counted, never deleted."""


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size: int
    mtime: float
    kind: FileKind

    @property
    def job_id(self) -> int | None:
        """The job a video belongs to."""
        match = _VIDEO.match(self.path.name)
        return int(match["job"]) if match is not None and self.kind is FileKind.VIDEO else None


def kind_of(path: Path, folder: Path) -> FileKind:
    name = path.name
    if name.endswith(".part") or name.endswith(".upload.mp4"):
        return FileKind.TEMPORARY
    if path.parent == folder / INPUTS and name.endswith(".png") and not name.startswith("."):
        return FileKind.PICTURE
    if path.parent == folder and _VIDEO.match(name):
        return FileKind.VIDEO
    return FileKind.OTHER


def scan(folder: Path) -> list[StoredFile]:
    """Every plain file in ``folder`` and ``folder/inputs``, oldest first; a file that vanishes
    while we look is left out."""
    found: list[StoredFile] = []
    for directory in (folder, folder / INPUTS):
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            path = Path(entry.path)
            found.append(StoredFile(path, info.st_size, info.st_mtime, kind_of(path, folder)))
    found.sort(key=lambda item: (item.mtime, item.path.name))
    return found


def over_budget(
    files: Iterable[StoredFile],
    budget: int,
    *,
    keep: Path | None = None,
    needed: Iterable[Path] = (),
    now: float | None = None,
) -> list[StoredFile]:
    """What to delete, oldest first, to bring ``files`` within ``budget`` bytes: videos (but never
    ``keep``, the one just made) and pictures no queued or running job ``needed``, nor one younger
    than :data:`PICTURE_GRACE_S`. Everything counts toward the total; temporary files are left to
    :func:`leftovers`."""
    now = time.time() if now is None else now
    files = list(files)
    total = sum(item.size for item in files)
    protected = {_key(path) for path in needed}
    if keep is not None:
        protected.add(_key(keep))
    victims: list[StoredFile] = []
    for item in sorted(files, key=lambda f: f.mtime):
        if total <= budget:
            break
        if item.kind is FileKind.VIDEO:
            deletable = _key(item.path) not in protected
        elif item.kind is FileKind.PICTURE:
            deletable = _key(item.path) not in protected and now - item.mtime >= PICTURE_GRACE_S
        else:
            deletable = False
        if deletable:
            victims.append(item)
            total -= item.size
    return victims


def leftovers(
    files: Iterable[StoredFile], *, older_than_s: float, now: float | None = None
) -> list[StoredFile]:
    """Temporary files older than ``older_than_s``: nothing writes them any more."""
    now = time.time() if now is None else now
    return [f for f in files if f.kind is FileKind.TEMPORARY and now - f.mtime >= older_than_s]


def unused_pictures(
    files: Iterable[StoredFile], referenced: Iterable[Path], *, now: float | None = None
) -> list[StoredFile]:
    """Pictures no job row names any more (their jobs were deleted by retention, or the request
    was refused after the picture was saved), once past :data:`PICTURE_GRACE_S`."""
    now = time.time() if now is None else now
    used = {_key(path) for path in referenced}
    return [
        f
        for f in files
        if f.kind is FileKind.PICTURE
        and _key(f.path) not in used
        and now - f.mtime >= PICTURE_GRACE_S
    ]


def remove(files: Iterable[StoredFile]) -> list[StoredFile]:
    """Delete ``files``; returns those this call deleted (one already gone is not an error)."""
    removed = []
    for item in files:
        try:
            item.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not delete %s: %s", item.path, exc)
            continue
        removed.append(item)
    return removed


def remove_paths(paths: Iterable[Path]) -> int:
    """Delete the files at ``paths`` (a deleted job's video); returns how many this call deleted."""
    files = [StoredFile(path, 0, 0.0, FileKind.OTHER) for path in paths]
    return len(remove(files))


def _key(path: Path) -> str:
    """One spelling per file, whether a job's row holds a relative or an absolute path."""
    return os.path.abspath(path)


__all__ = [
    "INPUTS",
    "LEFTOVER_AGE_S",
    "PICTURE_GRACE_S",
    "FileKind",
    "StoredFile",
    "kind_of",
    "leftovers",
    "over_budget",
    "remove",
    "remove_paths",
    "scan",
    "unused_pictures",
]
