"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

Data is written to a temporary file in the target's directory (same filesystem),
flushed to disk with ``fsync`` and then moved onto the target with ``os.replace``,
which is atomic on POSIX and Windows. :func:`atomic_link_or_copy` puts an
existing file at a new path the same way, as a hard link where it can.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

_TEMP_NAME_ATTEMPTS = 100
_MAX_NAME_CHARS = 200  # keeps ".<name>.tmp-<8 hex>" under the usual 255-byte name limit


def _create_temp_file(target: Path) -> Path:
    """Create an empty temporary file ``.<name>.tmp-<random>`` next to ``target``.

    The file is created exclusively with mode 0o666 filtered by the process umask,
    so the final file gets the same permissions as a normally created one.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    prefix = f".{target.name[:_MAX_NAME_CHARS]}.tmp-"
    for _ in range(_TEMP_NAME_ATTEMPTS):
        candidate = target.with_name(prefix + secrets.token_hex(4))
        try:
            fd = os.open(candidate, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"cannot create a temporary file next to '{target}'")


def _fsync_file(path: Path) -> None:
    """Flush a file's data to disk."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Flush a directory entry change to disk where the platform allows it (best effort)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically replaces ``path``.

    The temporary file ``.<name>.tmp-<random>`` already exists (empty) in the
    target's directory; write to it by path. When the ``with`` block ends without
    an exception the file is fsynced and moved onto ``path`` with ``os.replace``.
    If the block (or the fsync/replace) raises, the temporary file is removed and
    an existing ``path`` is left untouched. Parent directories are created.
    """
    target = Path(path)
    if not target.name:
        raise ValueError(f"not a file path: '{path}'")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _create_temp_file(target)
    try:
        yield temp
        _fsync_file(temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (complete file or no change)."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically; newlines are written as given (no translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_link_or_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> bool:
    """Put the file ``source`` at ``target`` atomically, as a hard link if possible, else a copy.

    Returns True for a hard link, False for a copy. A hard link shares the data
    (no extra disk space, nothing to copy) and, unlike a symbolic link, stays
    valid when the source folder is moved or the target folder is zipped; it
    needs both paths on one filesystem that supports links. Where linking fails
    (another filesystem, FAT, some network shares, a link-count limit) the bytes
    are copied to a temporary file, fsynced and moved into place. An existing
    ``target`` is replaced; one that already is ``source`` (the same file) is
    left as it is. Parent directories are created.

    Raises:
        OSError: ``source`` cannot be read or ``target`` cannot be written.
    """
    src, dst = Path(source), Path(target)
    if not dst.name:
        raise ValueError(f"not a file path: '{target}'")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dst):
            return True
    prefix = f".{dst.name[:_MAX_NAME_CHARS]}.tmp-"
    for _ in range(_TEMP_NAME_ATTEMPTS):
        temp = dst.with_name(prefix + secrets.token_hex(4))
        try:
            os.link(src, temp)
        except FileExistsError:
            continue
        except OSError:
            break  # no links here: copy
        try:
            os.replace(temp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise
        _fsync_directory(dst.parent)
        return True
    with atomic_path(dst) as temp:
        shutil.copyfile(src, temp)
    return False
