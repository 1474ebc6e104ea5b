"""Paths the file system cannot hold, refused before anything runs.

A folder name over the file system's limit (255 bytes on most) fails at the first
``mkdir``; a path so long that the files written inside it pass PATH_MAX (4096 bytes on
Linux) fails only when the deepest of them is written: for a training run, its first
checkpoint, after the steps before it were computed. ``check_path_fits`` says so in one
line while the command is still being validated.
"""

from __future__ import annotations

import os
from pathlib import Path

from drzero.errors import DrZeroError

PATH_MARGIN = 160  # room for what trackers write inside (wandb/run-.../files/...) and temp names


def check_path_fits(path: Path, flag: str, longest_inside: str = "") -> None:
    """Refuse ``path`` (one line) when a component is over the file system's NAME_MAX, or
    when ``longest_inside`` (the deepest file a command writes under it) and a margin would
    pass PATH_MAX."""
    path = Path(path)
    full = os.fsencode(str(path.absolute()))
    existing = next((p for p in [path.absolute(), *path.absolute().parents] if _exists(p)), Path("/"))
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        name_max, path_max = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise DrZeroError(f"{flag} {str(path)[:60]}...: the folder name {part[:40]}... is "
                              f"{len(os.fsencode(part))} bytes long; the file system allows {name_max}")
    inside = 1 + len(os.fsencode(longest_inside)) + PATH_MARGIN
    if len(full) + inside > path_max:
        raise DrZeroError(f"{flag} {str(path)[:60]}...: the path is {len(full)} bytes long, and the files written "
                          f"inside it need {inside} more, over the system's limit of {path_max}; use a shorter path")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long to stat
        return False
