"""Embedding cache: an in-memory LRU in front of an on-disk store.

Keys are ``image_key(image)`` (a content hash of the decoded pixels) combined
with the model fingerprint, so the same picture under another name hits and a
different model never does. On disk each entry is one file::

    b"CMEMB2\\n" + JSON header line {"shape", "dtype", "blake2b"} + raw float16 bytes

written atomically; the digest covers the shape as well as the bytes. An entry
whose header, length or digest does not check out (or an entry of the older
CMEMB1 format) is deleted and treated as a miss, so it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from clickmask.io.atomic import atomic_write_bytes

_MAGIC = b"CMEMB2\n"
#: The on-disk cache's default bound (a video's frames are 2 MB each); ``CLICKMASK_EMBED_CACHE_MB`` changes it.
DEFAULT_DISK_MB = 4096
#: The folder's size is checked every this many writes.
TRIM_EVERY = 32


def default_disk_bytes() -> int:
    """The disk bound in bytes: ``$CLICKMASK_EMBED_CACHE_MB`` megabytes, else :data:`DEFAULT_DISK_MB`."""
    text = os.environ.get("CLICKMASK_EMBED_CACHE_MB", "")
    try:
        return int(float(text) * 1024 * 1024) if text.strip() else DEFAULT_DISK_MB * 1024 * 1024
    except ValueError:
        logger.warning("CLICKMASK_EMBED_CACHE_MB=%r is not a number: %d MB", text, DEFAULT_DISK_MB)
        return DEFAULT_DISK_MB * 1024 * 1024
logger = logging.getLogger(__name__)


def image_key(image: np.ndarray) -> str:
    """Content hash (hex) of an image array, including its shape and dtype."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.shape}|{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def _digest(shape: tuple[int, ...], payload: bytes) -> str:
    h = hashlib.blake2b(json.dumps(list(shape)).encode() + b"|float16|", digest_size=16)
    h.update(payload)
    return h.hexdigest()


def encode_entry(array: np.ndarray) -> bytes:
    """Serialise an embedding as float16 with a self-checking header."""
    payload = np.ascontiguousarray(array, dtype=np.float16).tobytes()
    header = {"shape": list(array.shape), "dtype": "float16", "blake2b": _digest(tuple(array.shape), payload)}
    return _MAGIC + json.dumps(header).encode() + b"\n" + payload


def decode_entry(blob: bytes) -> np.ndarray | None:
    """Parse :func:`encode_entry` output; None when anything does not check out."""
    if not blob.startswith(_MAGIC):
        return None
    end = blob.find(b"\n", len(_MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(blob[len(_MAGIC) : end])
        shape = tuple(int(s) for s in header["shape"])
        digest = header["blake2b"]
    except (ValueError, KeyError, TypeError):
        return None
    payload = blob[end + 1 :]
    if len(payload) != int(np.prod(shape)) * 2:
        return None
    if _digest(shape, payload) != digest:
        return None
    return np.frombuffer(payload, dtype=np.float16).reshape(shape).astype(np.float32)


class EmbeddingCache:
    """LRU memory cache of ``max_items`` embeddings over an optional disk folder.

    Thread-safe: a background prefetch may ``put`` while a click ``get``s.
    """

    def __init__(self, directory: Path | None, max_items: int = 8, max_disk_bytes: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_items = max_items
        # the disk folder's bound: beyond it the least recently used entries go (None: no bound)
        self.max_disk_bytes = max_disk_bytes if max_disk_bytes is not None else default_disk_bytes()
        self._puts = 0
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0
        self.corrupt = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.emb"

    def get(self, key: str) -> np.ndarray | None:
        """The cached embedding (float32) or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits_memory += 1
                return self._memory[key]
        if self.directory is not None:
            path = self._path(key)
            try:
                blob = path.read_bytes()
            except OSError:
                blob = None
            if blob is not None:
                array = decode_entry(blob)
                if array is not None:
                    try:
                        os.utime(path)  # used now: the last to go when the folder is trimmed
                    except OSError:
                        pass
                    with self._lock:
                        self.hits_disk += 1
                        self._remember(key, array)
                    return array
                with self._lock:
                    self.corrupt += 1
                path.unlink(missing_ok=True)
        with self._lock:
            self.misses += 1
        return None

    def __contains__(self, key: str) -> bool:
        """True if ``key`` is in memory or on disk (without loading it)."""
        with self._lock:
            if key in self._memory:
                return True
        return self.directory is not None and self._path(key).is_file()

    def put(self, key: str, array: np.ndarray) -> None:
        """Store an embedding in memory and (atomically) on disk.

        Memory keeps the float16-rounded values too, so a result never depends
        on whether the embedding came from memory, disk or the encoder.
        """
        with self._lock:
            self._remember(key, np.asarray(array, dtype=np.float16).astype(np.float32))
        if self.directory is not None:
            try:
                atomic_write_bytes(self._path(key), encode_entry(array))
            except OSError as exc:  # a read-only or full disk only costs a recomputation
                logger.warning("embedding cache: cannot write %s: %s", self._path(key), exc)
            with self._lock:
                self._puts += 1
                trim = self.max_disk_bytes is not None and self._puts % TRIM_EVERY == 1
            if trim:
                self.trim()

    def trim(self) -> int:
        """Delete the least recently used entries on disk until the folder holds at most 90% of
        ``max_disk_bytes``; returns how many were deleted."""
        if self.directory is None or self.max_disk_bytes is None or not self.directory.is_dir():
            return 0
        entries = []
        for path in self.directory.glob("*/*.emb"):
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(e[1] for e in entries)
        if total <= self.max_disk_bytes:
            return 0
        deleted = 0
        for _, size, path in sorted(entries):
            if total <= 0.9 * self.max_disk_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            deleted += 1
        return deleted

    def _remember(self, key: str, array: np.ndarray) -> None:
        self._memory[key] = array
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
