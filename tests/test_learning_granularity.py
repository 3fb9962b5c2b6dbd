"""Per-category first-click granularity: the memory's statistics and the engine's token hook."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.engine.clicks import Click
from clickmask.engine.refine import InferenceOptions, RefinedPredictor
from clickmask.errors import ClickmaskError
from clickmask.learning.granularity import GranularityMemory, first_click_masks


def _box(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# four readings of one click: token 0 (single mask), a small part, a larger part, the whole
READINGS = [_box(40, 40, 10, 10, 30, 30), _box(40, 40, 18, 18, 22, 22), _box(40, 40, 14, 14, 26, 26),
            _box(40, 40, 5, 5, 35, 35)]


def test_memory_proposes_the_token_finished_objects_wanted_once_it_beats_the_engine():
    memory = GranularityMemory()
    whole = READINGS[3]
    assert memory.preferred() is None
    assert memory.record(READINGS, default=1, final=whole) == 3
    assert memory.preferred() is None  # one object: not yet (min_objects = 2)
    memory.record(READINGS, default=1, final=whole)
    assert memory.gain > 0 and memory.preferred() == 3


def test_memory_keeps_the_engine_choice_when_it_was_right():
    memory = GranularityMemory()
    # objects alternate between wanting the small part and the whole; the engine chose right each time
    for k in (1, 3, 1, 3, 1, 3):
        memory.record(READINGS, default=k, final=READINGS[k])
    assert memory.gain < 0 and memory.preferred() is None


def test_one_large_win_does_not_outvote_a_run_of_losses():
    memory = GranularityMemory()
    whole = READINGS[3]
    memory.record(READINGS, default=1, final=whole)  # no proposal yet: neither win nor loss
    memory.record(READINGS, default=1, final=whole)  # proposal 3 beats the engine's 1 by a lot
    assert (memory.wins, memory.losses) == (1, 0) and memory.preferred() == 3
    # two objects on which the engine's token 2 was right and token 3 a little too large: small losses
    slightly_large = [*READINGS[:2], _box(40, 40, 5, 5, 35, 35), _box(40, 40, 5, 5, 35, 36)]
    memory.record(slightly_large, default=2, final=slightly_large[2])
    assert memory.losses == 1 and memory.preferred() is None  # one win, one loss: a tie is not enough
    memory.record(slightly_large, default=2, final=slightly_large[2])
    assert memory.gain > 0, "the summed gain alone would keep proposing the whole"
    assert (memory.wins, memory.losses) == (1, 2) and memory.preferred() is None


def test_memory_round_trips_and_rejects_bad_state():
    memory = GranularityMemory()
    for _ in range(3):
        memory.record(READINGS, default=1, final=READINGS[2])
    again = GranularityMemory.from_dict(memory.to_dict())
    assert again.preferred() == memory.preferred() == 2
    assert again.to_dict() == memory.to_dict()
    old = {k: v for k, v in memory.to_dict().items() if k not in ("wins", "losses")}
    assert GranularityMemory.from_dict(old).preferred() is None  # stored before the sign rule: waits for a win
    with pytest.raises(ClickmaskError, match="bad stored state"):
        GranularityMemory.from_dict({"counts": [0, 1]})
    with pytest.raises(ClickmaskError, match="first-click masks"):
        memory.record(READINGS[:2], default=1, final=READINGS[2])


def test_engine_uses_the_preferred_token_for_first_clicks_only(sam_predictor):
    """Real model: the forced token's reading is shown; the readings of every token come back for the memory."""
    from clickmask.samples import load_samples

    sample = load_samples()[0]
    predictor = RefinedPredictor(sam_predictor, InferenceOptions.parse("first=central"))
    predictor.set_image(sample.image)
    ys, xs = np.nonzero(sample.mask)
    click = Click(float(np.median(xs)), float(np.median(ys)), True)
    own = predictor.predict([click])
    readings, default = first_click_masks(predictor, own, sample.mask.shape)
    assert len(readings) == 4 and own.info["first_token"] == default
    assert np.array_equal(own.mask, readings[default])
    other = next(k for k in (1, 2, 3) if k != default and not np.array_equal(readings[k], readings[default]))
    predictor.set_first_token(other)
    forced = predictor.predict([click])
    assert forced.info["first_token"] == other and forced.info["first_default"] == default
    assert np.array_equal(forced.mask, readings[other])
    second = predictor.predict([click, Click(click.x + 3, click.y + 3, True)], previous=forced)
    assert "first_token" not in second.info
    predictor.set_first_token(None)
    assert np.array_equal(predictor.predict([click]).mask, own.mask)
