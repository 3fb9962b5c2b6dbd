"""The OPO gate's robot test: replay the robot user on a finished object with and without the adapter.

The gate's default test (:func:`clickmask.sequential.opo.held_out_gain`) runs
the differentiable decoder on the whole image at low resolution. The robot and
the user, however, see the engine's full inference: zoom-in crops from the
third click, boundary snapping, the clicked-pixel rule. This test replays that
inference (the ONNX decoder through the same predictor the clicks use) on the
finished object's accepted mask, once with the adapter and once without, from
the same random first click, and compares the IoU after each click.

The first click is drawn at random inside the accepted mask rather than at
its centre: the model that produced the mask would otherwise replay its own
clicks and be favoured. Masks are HxW bool; clicks are (x, y) in pixels.
"""

from __future__ import annotations

import numpy as np

from clickmask.engine.predictor import Predictor
from clickmask.sequential.runner import SequentialOptions, annotate_object
from clickmask.training.simulate import initial_clicks

#: Robot clicks per replay: the first random, the rest at the centre of the largest error.
REPLAY_CLICKS = 5


def replay_ious(predictor: Predictor, target: np.ndarray, first, clicks: int = REPLAY_CLICKS) -> list[float]:
    """IoU with ``target`` after each of ``clicks`` robot clicks on the predictor's current image.

    ``first``: the first (positive) Click; later clicks are the sequential
    robot's (:func:`~clickmask.sequential.runner.annotate_object`: centre of the
    largest error, previous mask fed back, no stop on IoU). When the robot
    finds no error left, the last IoU is repeated, so the list always has
    ``clicks`` entries.
    """
    never_stop = SequentialOptions(max_clicks=clicks - 1, stop_iou=float("inf"))  # + the given first click
    ious = annotate_object(predictor, np.asarray(target, bool), None, never_stop, first=first)[0]
    return ious + ious[-1:] * (clicks - len(ious))


def replay_gain(adapted, predictor: Predictor, image: np.ndarray, target: np.ndarray, affine, seed: int,
                clicks: int = REPLAY_CLICKS) -> float:
    """Mean IoU gain of ``affine`` over the plain model when the robot replays object ``target``.

    ``adapted``: the :class:`~clickmask.training.adapted.AdaptedSamPredictor`
    under ``predictor`` (the predictor the clicks use, e.g. a
    ``RefinedPredictor`` around it); its adapter is switched to ``affine`` and
    to None (the plain model) and is left at None. image: HxWx3 uint8;
    target: HxW bool, not empty. Returns mean over clicks of IoU(adapted) -
    IoU(plain), in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    first = initial_clicks(np.asarray(target, bool), rng, 1, 0)[0]
    means = []
    for version in (affine, None):
        adapted.set_adapter(version)
        predictor.set_image(image)
        means.append(float(np.mean(replay_ious(predictor, target, first, clicks))))
    return means[0] - means[1]
