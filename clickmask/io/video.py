"""Frames of a video file (PyAV) or of a folder of images, decoded on demand.

Both are :class:`FrameSource`\\ s: ``len(source)`` frames, ``source.frame(i)`` as
``HxWx3 uint8`` RGB, ``source.size`` as ``(width, height)`` and ``source.name``.
Neither holds all frames in memory: a small least-recently-used cache keeps the
last frames asked for (``cache_frames``, default :data:`DEFAULT_CACHE_FRAMES`).

Video files (mp4, webm, avi, mov, mkv, m4v) are read with PyAV. Opening a video
reads its packet index (timestamps and keyframe flags, no decoding) and decodes
the first frame, so a file PyAV cannot decode is refused at once. ``frame(i)``
then seeks to the keyframe at or before frame ``i`` and decodes forward to it;
asking for the next frames continues from there without seeking. Frame ``i`` is
the ``i``-th frame in presentation order (by timestamp). Streams without usable
timestamps are decoded from the start, and a backward step restarts from there.
Display-rotation metadata (phone videos) is not applied yet.

A frame folder holds one image per frame (the image suffixes of
:mod:`clickmask.io.images`), ordered naturally by name (``frame2`` before
``frame10``); all frames must have the same size.

Every failure raises :class:`~clickmask.errors.VideoReadError` (or, for a frame
image, :class:`~clickmask.errors.ImageReadError`) naming the file and the problem.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from clickmask.errors import VideoReadError
from clickmask.io.images import IMAGE_EXTENSIONS, image_size, load_image

PathLike = str | os.PathLike[str]

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v"})
"""Lowercase file suffixes (with the dot) opened as videos."""

#: Decoded frames kept per source (854x480 RGB is 1.2 MB a frame).
DEFAULT_CACHE_FRAMES = 8


@runtime_checkable
class FrameSource(Protocol):
    """A sequence of same-size RGB frames, read one at a time."""

    @property
    def name(self) -> str:
        """A short display name (the file or folder name)."""
        ...

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of every frame."""
        ...

    def __len__(self) -> int: ...

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as ``HxWx3 uint8`` RGB."""
        ...


class _FrameCache:
    """A bounded least-recently-used map of frame index -> read-only frame."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the frame cache holds at least one frame")
        self.capacity = int(capacity)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, index: int, load: Callable[[int], np.ndarray]) -> np.ndarray:
        """The cached frame ``index``, else ``load(index)`` kept; one fetch at a time (a decoder is not shared)."""
        with self._lock:
            frame = self.get(index)
            if frame is None:
                frame = load(index)
                self.put(index, frame)
            return frame

    def get(self, index: int) -> np.ndarray | None:
        frame = self._items.get(index)
        if frame is not None:
            self._items.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        frame.flags.writeable = False
        self._items[index] = frame
        self._items.move_to_end(index)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def indices(self) -> list[int]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()


def _check_index(source: FrameSource, index: int) -> int:
    count = len(source)
    if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < count:
        raise VideoReadError(f"{source.name}: frame {index} is out of range (0..{count - 1})")
    return int(index)


def _describe(exc: BaseException) -> str:
    """One line for a decoding failure; FFmpeg's own wording (without the repeated file name) for PyAV's errors."""
    reason = getattr(exc, "strerror", None)
    if type(exc).__module__.startswith("av") and reason:
        return f"PyAV cannot decode it ({str(reason).strip().rstrip('.').lower()})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- video files


class VideoFile:
    """A video file read with PyAV; see the module docstring.

    Attributes:
        fps: frames per second (the stream's average rate; 0.0 if unknown).
        decoded_frames: how many frames were decoded so far (all seeks included).
    """

    def __init__(self, path: PathLike, cache_frames: int = DEFAULT_CACHE_FRAMES) -> None:
        self.path = Path(path)
        self._cache = _FrameCache(cache_frames)
        self.decoded_frames = 0
        self._container: Any = None
        self._decoder: Iterator[Any] | None = None
        self._position = -1  # index of the last frame the live decoder produced
        self._check_file()
        try:
            self._open()
            self._build_index()
            self._cache.put(0, self._decode_to(0))
        except VideoReadError:
            self.close()
            raise
        except Exception as exc:  # av.FFmpegError and anything a damaged file provokes
            self.close()
            raise self._error(_describe(exc)) from None

    # -- opening

    def _error(self, problem: str) -> VideoReadError:
        return VideoReadError(f"cannot read video '{self.path}': {problem}")

    def _check_file(self) -> None:
        if not self.path.exists():
            raise self._error("file not found")
        if self.path.is_dir():
            raise self._error("is a folder, not a file (a folder of frames is opened with FrameFolder)")
        if self.path.stat().st_size == 0:
            raise self._error("file is empty")

    def _open(self) -> None:
        import av

        self._container = av.open(str(self.path), mode="r")
        if not self._container.streams.video:
            raise self._error("no video stream in the file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0

    def _build_index(self) -> None:
        """Timestamps of all frames in presentation order, and which are keyframes (demuxing only)."""
        stamps: list[int | None] = []
        keys: list[bool] = []
        for packet in self._container.demux(self._stream):
            if packet.size == 0 or getattr(packet, "is_discard", False):
                continue
            stamps.append(packet.pts if packet.pts is not None else packet.dts)
            keys.append(bool(packet.is_keyframe))
        if not stamps:
            raise self._error("the video stream has no frames")
        self._timed = all(s is not None for s in stamps) and len(set(stamps)) == len(stamps)
        if self._timed:
            order = sorted(range(len(stamps)), key=lambda i: stamps[i])
            self._pts = [int(stamps[i]) for i in order]  # type: ignore[arg-type]
            self._index_of = {pts: i for i, pts in enumerate(self._pts)}
            # frame 0 counts as a keyframe: a seek to its timestamp starts at the stream's beginning
            self._keyframes = sorted({0} | {i for i, j in enumerate(order) if keys[j]})
        else:
            self._pts = []
            self._index_of = {}
            self._keyframes = [0]
        self._count = len(stamps)
        self._restart(0)

    # -- decoding

    def _restart(self, index: int) -> None:
        """Position the demuxer at the keyframe at or before frame ``index``."""
        if self._timed:
            key = self._keyframe_before(index)
            self._container.seek(self._pts[key], stream=self._stream, backward=True, any_frame=False)
        else:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._position = -1

    def _keyframe_before(self, index: int) -> int:
        """The last keyframe at or before frame ``index`` (presentation order)."""
        return self._keyframes[max(0, int(np.searchsorted(self._keyframes, index, side="right")) - 1)]

    def _decode_to(self, index: int) -> np.ndarray:
        live = self._decoder is not None and self._position < index
        if not (live and (not self._timed or self._position >= self._keyframe_before(index) - 1)):
            self._restart(index)
        assert self._decoder is not None
        counter = self._position
        for frame in self._decoder:
            self.decoded_frames += 1
            if self._timed:
                if frame.pts is None or frame.pts not in self._index_of:
                    continue
                found = self._index_of[frame.pts]
            else:
                found = counter + 1
            counter = found
            self._position = found
            if found == index:
                return frame.to_ndarray(format="rgb24")
            if found > index:  # the decoder skipped it (broken stream): do not keep going
                break
        self._decoder = None
        raise self._error(f"frame {index} could not be decoded (the stream ends or is damaged before it)")

    # -- FrameSource

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> tuple[int, int]:
        return int(self._stream.codec_context.width), int(self._stream.codec_context.height)

    def __len__(self) -> int:
        return self._count

    def frame(self, index: int) -> np.ndarray:
        return self._cache.fetch(_check_index(self, index), self._read)

    def _read(self, index: int) -> np.ndarray:
        if self._container is None:
            raise self._error("the video is closed")
        try:
            return self._decode_to(index)
        except VideoReadError:
            raise
        except Exception as exc:
            self._decoder = None
            raise self._error(f"frame {index}: {_describe(exc)}") from None

    @property
    def cached_frames(self) -> list[int]:
        """Indices of the frames held in the cache, least recently used first."""
        return self._cache.indices()

    @property
    def duration(self) -> float:
        """Seconds (frame count / fps), 0.0 if the rate is unknown."""
        return self._count / self.fps if self.fps else 0.0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._decoder = None
        self._cache.clear()

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- frame folders


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key where runs of digits compare as numbers: ``f2.png`` < ``f10.png``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "") + (name,)


class FrameFolder:
    """A folder of images, one per frame, in natural name order; see the module docstring."""

    fps: float = 0.0

    def __init__(self, path: PathLike, cache_frames: int = DEFAULT_CACHE_FRAMES, fps: float = 0.0) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._cache = _FrameCache(cache_frames)
        if not self.path.is_dir():
            problem = "not found" if not self.path.exists() else "not a folder"
            raise VideoReadError(f"cannot read frame folder '{self.path}': {problem}")
        self.files = sorted(
            (p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        )
        if not self.files:
            raise VideoReadError(f"cannot read frame folder '{self.path}': no image files in it")
        self._size = image_size(self.files[0])
        for file in self.files[1:]:
            size = image_size(file)
            if size != self._size:
                raise VideoReadError(
                    f"cannot read frame folder '{self.path}': frames of different sizes "
                    f"({self.files[0].name} is {self._size[0]}x{self._size[1]}, {file.name} is {size[0]}x{size[1]})"
                )

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self.files)

    def frame(self, index: int) -> np.ndarray:
        return self._cache.fetch(_check_index(self, index), self._read)

    def _read(self, index: int) -> np.ndarray:
        rgb = load_image(self.files[index])
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            raise VideoReadError(
                f"cannot read frame folder '{self.path}': {self.files[index].name} is "
                f"{rgb.shape[1]}x{rgb.shape[0]}, the other frames {self._size[0]}x{self._size[1]}"
            )
        return rgb

    @property
    def cached_frames(self) -> list[int]:
        return self._cache.indices()

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_frames(path: PathLike, cache_frames: int = DEFAULT_CACHE_FRAMES) -> VideoFile | FrameFolder:
    """A folder -> :class:`FrameFolder`; a video file -> :class:`VideoFile`."""
    target = Path(path)
    if target.is_dir():
        return FrameFolder(target, cache_frames)
    if target.suffix.lower() not in VIDEO_EXTENSIONS and target.exists():
        known = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise VideoReadError(f"cannot read video '{target}': unsupported file type '{target.suffix}' (known: {known})")
    return VideoFile(target, cache_frames)


__all__ = [
    "DEFAULT_CACHE_FRAMES",
    "VIDEO_EXTENSIONS",
    "FrameFolder",
    "FrameSource",
    "VideoFile",
    "natural_key",
    "open_frames",
]
