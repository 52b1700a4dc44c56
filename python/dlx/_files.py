"""Writing files a user keeps: atomically, with the user's umask, leaving nothing stale.

An atomic write goes to a temporary file beside the target (``.NAME.RANDOM.tmp``), is flushed
to disk and renamed over the target, so a crash leaves either the old file or the new one. The
writer holds an exclusive lock on its temporary file while it writes; a temporary file that
nobody holds a lock on belongs to a write that died (a killed process), and the next write
into that folder removes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import DlxFileNotFoundError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale files are left for the user
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "user_umask"]


def user_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, then restore
    os.umask(mask)
    return mask


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    pattern = re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp$")
    if fcntl is None:
        return
    for candidate in directory.iterdir():
        if not pattern.match(candidate.name):
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a write in progress holds it
        else:
            candidate.unlink(missing_ok=True)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file and rename it to ``path`` once complete. The
    file gets the permissions any new file of the user gets (0666 less the umask)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DlxFileNotFoundError(f"cannot write {path}: the folder {directory} does not exist")
    _remove_stale_temporaries(directory, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            write(f)
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):  # mkstemp makes the file 0600
                os.fchmod(f.fileno(), 0o666 & ~user_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
