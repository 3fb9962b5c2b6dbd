"""Videos and volumes in the app: click an object on one frame, propagate it, correct a frame, export.

One :class:`SequenceService` per server. A frame is clicked like an image
(an :class:`~clickmask.engine.session.InteractiveSession` on the shared
predictor, under the app's click lock); finishing stores the mask as the
frame's annotation of a track (a new track, or the selected one). Propagating
a track from an annotated frame runs in a background thread
(:class:`~clickmask.propagation.propagator.Track`, rebuilt from the stored
masks: the annotated frames, and the propagated ones for the fusion), writes
every frame's mask as soon as it is computed (a killed server loses no
finished frame; the browser shows them as they come), reports its progress
and can be cancelled. The worst-frame pointer is the propagated frame with the
lowest confidence. Exports: :func:`export_sequence` (also ``clickmask export``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.refine.first_click import FINEST
from clickmask.engine.refine.predictor import RefinedPredictor, sam_model
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError, VideoReadError, VolumeReadError
from clickmask.io.sequences import open_sequence
from clickmask.project.sequences import SequenceStore
from clickmask.propagation.propagator import Track
from clickmask.propagation.rounds import round_passes
from clickmask.propagation.tracks import resolve_overlaps

logger = logging.getLogger(__name__)

#: Open videos and volumes kept (each holds a few decoded frames, or a volume's voxels).
MAX_SOURCES = 2
#: Frame sessions (one object being clicked on one frame in one tab) kept.
MAX_SESSIONS = 8
#: A propagated frame below this confidence is shown as one to check.
LOW_CONFIDENCE = 0.5


#: Export formats of a sequence: DAVIS palette PNGs, COCO with track ids, a NIfTI label volume (volumes),
#: a DICOM Segmentation (volumes read from a DICOM series).
SEQUENCE_FORMATS = ("davis-png", "coco-video", "nifti", "dicom-seg")


def label_maps(store: SequenceStore, sequence_id: int, source) -> list[np.ndarray]:
    """Per frame of ``source`` (the sequence's frames), an HxW int32 map of track ids: a pixel two tracks
    claim goes to the one the user drew there, else to the more confident
    (``propagation.tracks.resolve_overlaps``)."""
    w, h = source.size
    known = {t["id"]: store.masks(t["id"]) for t in store.tracks(sequence_id)}
    maps = []
    for f in range(len(source)):
        ids = [t for t in known if f in known[t]]
        if not ids:
            maps.append(np.zeros((h, w), np.int32))
            continue
        masks = [known[t][f][0] for t in ids]
        probs = [np.full((h, w), 2.0 if known[t][f][1] else known[t][f][3], np.float64) for t in ids]
        maps.append(resolve_overlaps(ids, masks, probs))
    return maps


def export_sequence(store: SequenceStore, sequence_id: int, source, fmt: str, out_dir: Path) -> list[Path]:
    """Write a sequence's tracks in ``fmt`` (:data:`SEQUENCE_FORMATS`) under ``out_dir``; returns the files.

    ``davis-png``: ``<name>/00000.png`` ... (palette PNGs, pixel = track id);
    ``coco-video``: ``<name>.json`` (one image per frame, one instance per
    track and frame with its ``track_id``); ``nifti``: ``<name>_labels.nii.gz``
    with the volume's affine (volumes only); ``dicom-seg``: ``<name>_seg.dcm``,
    one segment per track named by its category (volumes read from a DICOM series).
    """
    from clickmask.formats.sequences import export_coco_sequence, export_dicom_seg, export_nifti_labels, \
        export_png_sequence

    if fmt not in SEQUENCE_FORMATS:
        raise ClickmaskError(f"unknown export format {fmt!r} for a video or volume: use {', '.join(SEQUENCE_FORMATS)}")
    info = store.get(sequence_id)
    stem = Path(info["path"]).name.split(".")[0]
    if fmt == "nifti" and not hasattr(source, "volume"):
        raise ClickmaskError(f"{info['path']} is a video: a NIfTI label volume is for volumes")
    if fmt == "dicom-seg" and not getattr(getattr(source, "volume", None), "sources", ()):
        raise ClickmaskError(f"{info['path']} is not a DICOM series: a DICOM-SEG refers to the series' slices")
    maps = label_maps(store, sequence_id, source)
    if fmt == "davis-png":
        export_png_sequence(maps, out_dir / stem)
        return sorted((out_dir / stem).glob("*.png"))
    names = {c["id"]: c["name"] for c in store.store.list_categories()}
    cats = {t["id"]: names[t["category_id"]] for t in store.tracks(sequence_id) if t["category_id"] in names}
    if fmt == "dicom-seg":
        target = out_dir / f"{stem}_seg.dcm"
        export_dicom_seg(np.stack(maps), source.volume.sources, target, cats)
        return [target]
    if fmt == "coco-video":
        target = out_dir / f"{stem}.json"
        export_coco_sequence(maps, target, video=info["path"], categories=cats)
        return [target]
    target = out_dir / f"{stem}_labels.nii.gz"
    export_nifti_labels(np.stack(maps), source.volume.affine, target)
    return [target]


class _Cancelled(Exception):
    pass


@dataclass
class Job:
    """A propagation running (or finished) in the background."""

    track_id: int
    frame: int
    total: int
    done: int = 0
    running: bool = True
    cancelled: bool = False
    error: str | None = None
    started: float = field(default_factory=time.time)
    ms_per_frame: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def propagation_model(predictor):
    """The predictor's SAM model without a category's adapter (propagation reads raw embeddings)."""
    base = sam_model(predictor)
    if base is None:
        raise ClickmaskError(f"model {predictor.model_id}: propagation needs a SAM-style ONNX model")
    from clickmask.learning.adapted import AdaptedPredictor

    return AdaptedPredictor.sharing(base) if isinstance(base, AdaptedPredictor) else base


class SequenceService:
    """The project's videos and volumes (see the module docstring)."""

    def __init__(self, state) -> None:
        self.state = state
        self.store = SequenceStore(state.store)
        self.store.sync()
        self._sources: OrderedDict[int, Any] = OrderedDict()
        self._sessions: OrderedDict[tuple[int, int, str], InteractiveSession] = OrderedDict()
        self._jobs: dict[int, Job] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._before: dict[tuple[int, int], np.ndarray] = {}  # (track, frame): the mask a correction replaced
        self._lock = threading.Lock()
        self._encoded: dict[int, int] = {}  # frames whose embedding the background encoder made, by sequence
        self._encoding: int | None = None  # the sequence being encoded (one at a time: the last opened)

    # ------------------------------------------------------------------ sources
    def source(self, sequence_id: int):
        """The open video or volume (its size and frame count recorded; its error too)."""
        with self._lock:
            if sequence_id in self._sources:
                self._sources.move_to_end(sequence_id)
                return self._sources[sequence_id]
        path = self.store.path(sequence_id)
        try:
            source = open_sequence(path)
        except (VideoReadError, VolumeReadError) as exc:
            self.store.set_info(sequence_id, None, None, None, str(exc))
            raise
        w, h = source.size
        info = self.store.get(sequence_id)
        if (info["frames"], info["width"], info["height"], info["error"]) != (len(source), w, h, None):
            self.store.set_info(sequence_id, len(source), w, h, None)
        with self._lock:
            self._sources[sequence_id] = source
            while len(self._sources) > MAX_SOURCES:
                _, old = self._sources.popitem(last=False)
                if hasattr(old, "close"):
                    old.close()
        return source

    def frame(self, sequence_id: int, index: int) -> np.ndarray:
        source = self.source(sequence_id)
        if not 0 <= index < len(source):
            raise ClickmaskError(f"{self.store.get(sequence_id)['path']}: frame {index} does not exist "
                                 f"(0..{len(source) - 1})")
        return source.frame(index)

    def frame_jpeg(self, sequence_id: int, index: int) -> bytes:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(self.frame(sequence_id, index), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise ClickmaskError("cannot encode the frame as JPEG")
        return buf.tobytes()

    def info(self, sequence_id: int) -> dict[str, Any]:
        """The sequence, its tracks with their frames, the frame to check next, the running job and how many
        frames' embeddings the background encoder has made (it starts when the sequence is first asked about)."""
        source = self.source(sequence_id)
        self.encode_all(sequence_id)
        job = self._jobs.get(sequence_id)
        return {**self.store.get(sequence_id), "tracks": self.store.tracks(sequence_id),
                "pointer": self.pointer(sequence_id), "low_confidence": LOW_CONFIDENCE,
                "job": None if job is None else job.as_dict(),
                "encoded": min(self._encoded.get(sequence_id, 0), len(source))}

    def encode_all(self, sequence_id: int) -> None:
        """Compute every frame's embedding in a background thread (the model's cache keeps them on disk, so a
        propagation or a click on any frame finds it ready); opening another sequence stops it."""
        with self._lock:
            if self._encoding == sequence_id or self._encoded.get(sequence_id, -1) >= len(self.source_now(sequence_id)):
                return
            self._encoding = sequence_id

        def run() -> None:
            try:
                model = propagation_model(self.state.predictor)
                source = self.source(sequence_id)
                for i in range(self._encoded.get(sequence_id, 0), len(source)):
                    if self._encoding != sequence_id:
                        return
                    model.image_embedding(source.frame(i))
                    self._encoded[sequence_id] = i + 1
            except Exception as exc:  # noqa: BLE001 - clicks and propagation encode what they need themselves
                logger.warning("background encoding of sequence %s stopped: %s", sequence_id, exc)
            finally:
                with self._lock:
                    if self._encoding == sequence_id:
                        self._encoding = None

        threading.Thread(target=run, daemon=True, name=f"clickmask-encode-{sequence_id}").start()

    def source_now(self, sequence_id: int):
        """The open source without opening it (lock held by the caller); an empty list when not open."""
        return self._sources.get(sequence_id, [])

    # ------------------------------------------------------------------ clicking one frame
    def _session(self, sequence_id: int, index: int, tab: str) -> InteractiveSession:
        """The frame's click session with the predictor set to the frame (click lock held)."""
        key = (sequence_id, index, tab)
        image_key = ("frame", sequence_id, index)
        if self.state._current_image != image_key:
            self.state.predictor.set_image(self.frame(sequence_id, index))
            self.state._current_image = image_key
        if key not in self._sessions:
            self._sessions[key] = InteractiveSession(self.state.predictor)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        return self._sessions[key]

    def click(self, sequence_id: int, index: int, x: float, y: float, positive: bool, tab: str = "",
              category_id: int | None = None) -> InteractiveSession:
        with self.state.click_lock.bounded():
            session = self._session(sequence_id, index, tab)
            self.state.adaptation.select(("frame", sequence_id, tab), category_id, new_object=not session.clicks)
            if not session.clicks and isinstance(self.state.predictor, RefinedPredictor):
                # a slice's first click: the finest reading (an organ, not the body section; decision 0021)
                volume = self.store.get(sequence_id)["kind"] == "volume"
                self.state.predictor.set_first_token(FINEST if volume else None)
            session.add_click(Click(float(x), float(y), bool(positive)))
            return session

    def undo_click(self, sequence_id: int, index: int, tab: str = "") -> InteractiveSession | None:
        with self.state.click_lock:
            session = self._sessions.get((sequence_id, index, tab))
            if session is not None:
                session.undo()
            return session

    def reset(self, sequence_id: int, index: int, tab: str = "") -> None:
        with self.state.click_lock:
            self._sessions.pop((sequence_id, index, tab), None)

    def in_progress(self, sequence_id: int, index: int, tab: str = "") -> InteractiveSession | None:
        return self._sessions.get((sequence_id, index, tab))

    def finish(self, sequence_id: int, index: int, track_id: int | None, category_id: int | None,
               tab: str = "") -> dict[str, Any]:
        """The frame's clicked mask becomes the frame's annotation of a track (a new one without ``track_id``)."""
        session = self._sessions.get((sequence_id, index, tab))
        mask = None if session is None else session.current_mask()
        if mask is None or not mask.any():
            raise ClickmaskError(f"frame {index}: no object to finish (click on it first)")
        if track_id is None:
            track = self.store.add_track(sequence_id, category_id)
        else:
            track = self.store.track(track_id)
            if track["sequence_id"] != sequence_id:
                raise ClickmaskError(f"track {track_id} belongs to another video or volume")
            if category_id is not None and category_id != track["category_id"]:
                self.store.set_category(track_id, category_id)
            earlier = self.store.masks(track_id).get(index)
            if earlier is not None and not earlier[1]:
                self._before[(track_id, index)] = earlier[0]  # what the correction changed: for the fusion
        self.store.put_masks(track["id"], [(index, mask, True, index, 1.0)])
        self.reset(sequence_id, index, tab)
        return self.store.track(track["id"])

    # ------------------------------------------------------------------ propagation
    def propagate(self, sequence_id: int, track_id: int, index: int) -> dict[str, Any]:
        """Start propagating a track from its annotated frame ``index`` (a background thread)."""
        track_info = self.store.track(track_id)
        if track_info["sequence_id"] != sequence_id:
            raise ClickmaskError(f"track {track_id} belongs to another video or volume")
        known = self.store.masks(track_id)
        if index not in known or not known[index][1]:
            raise ClickmaskError(f"track {track_id} has no annotation on frame {index}: finish an object there first")
        source = self.source(sequence_id)
        with self._lock:
            running = self._jobs.get(sequence_id)
            if running is not None and running.running:
                raise ClickmaskError("a propagation is running on this video or volume: wait for it or cancel it")
            earlier = [f for f, v in known.items() if v[1] and f != index]
            total = sum(len(p.frames) for p in round_passes(earlier, index, len(source)))
            job = Job(track_id, index, total)
            self._jobs[sequence_id] = job
        thread = threading.Thread(target=self._run, args=(sequence_id, job, known), daemon=True,
                                  name=f"clickmask-propagate-{sequence_id}")
        self._threads[sequence_id] = thread
        thread.start()
        return job.as_dict()

    def _run(self, sequence_id: int, job: Job, known: dict) -> None:
        try:
            source = self.source(sequence_id)
            track = Track(propagation_model(self.state.predictor), source)
            for f, (mask, annotated, origin, confidence) in known.items():
                if annotated:
                    track.annotate(f, mask)
                else:
                    st = track.states[f]
                    st.mask, st.low_res = mask, track.grid.mask_to_low_res(mask)
                    st.source, st.confidence = origin, confidence
            before = self._before.pop((job.track_id, job.frame), None)

            def on_frame(j: int) -> None:
                st = track.states[j]
                self.store.put_masks(job.track_id, [(j, st.mask, False, st.source, st.confidence)])
                job.done += 1
                job.ms_per_frame = round(float(np.median(track.propagate_ms)), 1)
                if job.cancelled:
                    raise _Cancelled

            track.propagate(job.frame, before, on_frame)
        except _Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - the job reports it; the server goes on
            logger.exception("propagation of track %s failed", job.track_id)
            job.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            job.running = False

    def job(self, sequence_id: int) -> dict[str, Any] | None:
        job = self._jobs.get(sequence_id)
        return None if job is None else job.as_dict()

    def cancel(self, sequence_id: int) -> dict[str, Any] | None:
        """Stop the running propagation after its current frame (the frames done so far are kept)."""
        job = self._jobs.get(sequence_id)
        if job is not None and job.running:
            job.cancelled = True
        return self.job(sequence_id)

    def wait(self, sequence_id: int, timeout: float | None = None) -> None:
        """Wait for the sequence's propagation thread (tests, exports)."""
        thread = self._threads.get(sequence_id)
        if thread is not None:
            thread.join(timeout)

    def pointer(self, sequence_id: int) -> dict[str, Any] | None:
        """The propagated frame to check next: the lowest confidence over the tracks (None: nothing propagated)."""
        best = None
        for t in self.store.tracks(sequence_id):
            for frame, confidence in t["propagated"].items():
                if best is None or confidence < best["confidence"]:
                    best = {"track": t["id"], "frame": int(frame), "confidence": confidence}
        return best

    # ------------------------------------------------------------------ masks and exports
    def frame_masks(self, sequence_id: int, index: int) -> dict[int, np.ndarray]:
        """Every track's mask on a frame (overlaps not resolved)."""
        return {t: m for t, (m, _, _) in self.store.frame_masks(sequence_id, index).items()}

    def label_maps(self, sequence_id: int) -> list[np.ndarray]:
        """Per frame, an HxW int32 map of track ids (:func:`label_maps`)."""
        return label_maps(self.store, sequence_id, self.source(sequence_id))

    def import_png(self, sequence_id: int, folder: Path) -> dict[int, int]:
        """Read a DAVIS-style folder of label PNGs (``00012.png``: pixel value = object) into new tracks, each
        object drawn on the frames where it is present; returns {object value in the files: new track id}.
        Everything is checked (frame numbers, size) before anything is stored."""
        from clickmask.formats.sequences import read_png_sequence

        frames, maps = read_png_sequence(folder)
        source = self.source(sequence_id)
        if frames[-1] >= len(source):
            raise ClickmaskError(f"PNG sequence '{folder}' has frame {frames[-1]}, the sequence has {len(source)}")
        w, h = source.size
        if maps[0].shape != (h, w):
            raise ClickmaskError(f"PNG sequence '{folder}' is {maps[0].shape[1]}x{maps[0].shape[0]}, "
                                 f"the frames are {w}x{h}")
        made: dict[int, int] = {}
        for value in sorted({int(v) for m in maps for v in np.unique(m)} - {0}):
            items = [(f, m == value, True, f, 1.0) for f, m in zip(frames, maps) if (m == value).any()]
            track = self.store.add_track(sequence_id)
            self.store.put_masks(track["id"], items)
            made[value] = track["id"]
        return made

    def export(self, sequence_id: int, fmt: str, out_dir: Path) -> list[Path]:
        """Write the sequence's tracks in ``fmt`` (:data:`SEQUENCE_FORMATS`) under ``out_dir``; the files."""
        return export_sequence(self.store, sequence_id, self.source(sequence_id), fmt, out_dir)
