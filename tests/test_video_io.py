"""Video files (PyAV) and frame folders: frame count, seeking, bounded memory, clear errors."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from clickmask.errors import ClickmaskError, VideoReadError  # noqa: E402
from clickmask.io.video import FrameFolder, FrameSource, VideoFile, natural_key, open_frames  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sequence_files import encode_video  # noqa: E402

WIDTH, HEIGHT, FRAMES, GOP = 128, 96, 48, 8
SQUARE = 24


def square_left(i: int) -> int:
    """Left column of the white square in frame ``i`` (it moves 2 px right per frame)."""
    return 4 + 2 * i


def square_top(i: int) -> int:
    return 16 + (i % 5) * 4


def draw(i: int) -> np.ndarray:
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    top, left = square_top(i), square_left(i)
    img[top : top + SQUARE, left : left + SQUARE] = 255
    return img


def write_video(path: Path, codec: str, frames: int = FRAMES, gop: int = GOP) -> Path:
    options = {"g": str(gop), "keyint_min": str(gop), "bf": "2", "crf": "18"} if codec == "libx264" else None
    return encode_video(path, (draw(i) for i in range(frames)), codec, rate=25, gop=gop, options=options)


def check_square(frame: np.ndarray, i: int) -> None:
    """The decoded frame shows the square where it was drawn (within codec tolerance)."""
    assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
    gray = frame.mean(axis=2)
    ys, xs = np.nonzero(gray > 128)
    assert ys.size > 0.8 * SQUARE * SQUARE
    assert abs(xs.min() - square_left(i)) <= 1 and abs(ys.min() - square_top(i)) <= 1
    assert abs(xs.mean() - (square_left(i) + (SQUARE - 1) / 2)) <= 1
    top, left = square_top(i), square_left(i)
    assert gray[top + 4 : top + SQUARE - 4, left + 4 : left + SQUARE - 4].min() > 200
    assert gray[:, : max(0, left - 3)].max(initial=0) < 60  # background left of the square stays dark


CODECS = {"mp4": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4", "mov": "mpeg4"}


@pytest.fixture(scope="module", params=sorted(CODECS))
def video(request, tmp_path_factory) -> Path:
    ext = request.param
    if CODECS[ext] not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {CODECS[ext]} encoder")
    return write_video(tmp_path_factory.mktemp("video") / f"square.{ext}", CODECS[ext])


def test_video_count_fps_size_and_every_frame(video):
    with VideoFile(video) as source:
        assert isinstance(source, FrameSource)
        assert len(source) == FRAMES
        assert source.size == (WIDTH, HEIGHT)
        assert source.fps == pytest.approx(25.0)
        assert source.duration == pytest.approx(FRAMES / 25.0)
        assert source.name == video.name
        for i in range(FRAMES):
            check_square(source.frame(i), i)


def test_video_random_seeks_decode_only_from_the_previous_keyframe(video):
    with VideoFile(video, cache_frames=3) as source:
        assert source.decoded_frames <= GOP + 2  # opening decodes the first frame, not the video
        order = list(range(FRAMES))
        random.Random(7).shuffle(order)
        for i in order:
            before = source.decoded_frames
            check_square(source.frame(i), i)
            # a seek lands on the keyframe at or before i: at most one GOP (+ codec delay) decoded
            assert source.decoded_frames - before <= GOP + 3
            assert len(source.cached_frames) <= 3
        assert source.decoded_frames < FRAMES * (GOP + 3) / 2


def test_video_last_frame_does_not_decode_the_whole_video(video):
    with VideoFile(video, cache_frames=2) as source:
        check_square(source.frame(FRAMES - 1), FRAMES - 1)
        assert source.decoded_frames <= 1 + GOP + 3
        assert source.decoded_frames < FRAMES


def test_video_sequential_reading_continues_without_seeking(video):
    with VideoFile(video, cache_frames=2) as source:
        for i in range(10, 30):
            check_square(source.frame(i), i)
        # frames 10..29 in order: one seek to the keyframe before 10, then one decode per frame
        assert source.decoded_frames <= 1 + GOP + 3 + 20


def test_video_cache_is_bounded_and_frames_are_read_only(video):
    with VideoFile(video, cache_frames=4) as source:
        for i in range(0, FRAMES, 3):
            source.frame(i)
        assert source.cached_frames == list(range(0, FRAMES, 3))[-4:]
        frame = source.frame(FRAMES - 3)
        assert frame is source.frame(FRAMES - 3)  # a cache hit
        with pytest.raises(ValueError):
            frame[0, 0, 0] = 1


def test_video_frame_out_of_range(video):
    with VideoFile(video) as source:
        for bad in (-1, FRAMES, 1.5):
            with pytest.raises(VideoReadError, match="out of range"):
                source.frame(bad)


def test_undecodable_video_is_one_clear_error(tmp_path):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(VideoReadError) as info:
        VideoFile(garbage)
    message = str(info.value)
    assert str(garbage) in message and "PyAV cannot decode it" in message
    assert "\n" not in message and isinstance(info.value, ClickmaskError)

    good = write_video(tmp_path / "good.mp4", "libx264", frames=12)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # the index (moov) is at the end
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        source = VideoFile(truncated)
        for i in range(len(source)):
            source.frame(i)

    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError, match="file is empty"):
        VideoFile(empty)
    with pytest.raises(VideoReadError, match="file not found"):
        VideoFile(tmp_path / "missing.avi")


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.mov"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("pcm_s16le", rate=8000)
    stream.layout = "mono"
    samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    samples.sample_rate = 8000
    for packet in stream.encode(samples):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(VideoReadError, match="no video stream"):
        VideoFile(path)


# ----------------------------------------------------------------------------- frame folders


def test_natural_order():
    names = ["f10.png", "f2.png", "F1.png", "f2b.png", "f002.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f002.png", "f2.png", "f2b.png", "f10.png"]


def test_frame_folder(tmp_path):
    from PIL import Image

    for i in range(12):
        Image.fromarray(draw(i)).save(tmp_path / f"frame{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_frames(tmp_path, cache_frames=3)
    assert isinstance(source, FrameFolder) and isinstance(source, FrameSource)
    assert len(source) == 12 and source.size == (WIDTH, HEIGHT) and source.name == tmp_path.name
    assert [p.name for p in source.files][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    for i in (11, 0, 5, 10, 2):
        np.testing.assert_array_equal(source.frame(i), draw(i))
    assert len(source.cached_frames) == 3
    with pytest.raises(VideoReadError, match="out of range"):
        source.frame(12)


def test_frame_folder_errors(tmp_path):
    from PIL import Image

    with pytest.raises(VideoReadError, match="no image files"):
        FrameFolder(tmp_path)
    Image.fromarray(draw(0)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a2.png")
    with pytest.raises(VideoReadError, match="frames of different sizes.*a2.png"):
        FrameFolder(tmp_path)
    with pytest.raises(VideoReadError, match="not found"):
        FrameFolder(tmp_path / "nope")


def test_open_frames_dispatch(tmp_path):
    video = write_video(tmp_path / "clip.mp4", "libx264", frames=6)
    assert isinstance(open_frames(video), VideoFile)
    other = tmp_path / "clip.txt"
    other.write_text("x")
    with pytest.raises(VideoReadError, match="unsupported file type"):
        open_frames(other)


@pytest.mark.data
def test_davis_frame_folder(data_root):
    folder = data_root / "DAVIS2016_dev" / "images"
    if not folder.is_dir():
        pytest.skip("DAVIS2016_dev not in the data root")
    sequence = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    source = FrameFolder(sequence)
    assert len(source) == len(list(sequence.glob("*.jpg")))
    assert source.size == (854, 480)
    assert source.frame(len(source) - 1).shape == (480, 854, 3)
