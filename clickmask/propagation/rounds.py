"""Which frames a round propagates to (CiVOS's rule).

A round annotates frame ``a``; its mask is propagated backward to the frame
after the nearest frame annotated in an earlier round before ``a`` (or to
frame 0) and forward to the frame before the nearest one after ``a`` (or to
the last frame). Where a direction stops at an earlier annotation, the frames
it reaches were produced by an earlier round, so the new masks are fused with
theirs (:mod:`.fusion`); where it runs to the end of the video they were too,
unless this is the first round, and they are fused with the nearer annotation
trusted (the distance weight then counts from ``a`` only).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pass:
    """One direction of a round: the frames to propagate to, in order, and the earlier
    annotation the direction stops at (None: it runs to the video's end)."""

    frames: tuple[int, ...]
    stop: int | None

    @property
    def step(self) -> int:
        return 1 if len(self.frames) < 2 or self.frames[1] > self.frames[0] else -1


def round_passes(annotated_before: set[int] | list[int], frame: int, length: int) -> tuple[Pass, Pass]:
    """(backward pass, forward pass) of a round that annotates ``frame`` in a video of ``length`` frames.

    ``annotated_before``: the frames annotated in earlier rounds (``frame``
    itself may be among them: annotating it again propagates the same way).
    """
    if not 0 <= frame < length:
        raise ValueError(f"frame {frame} is outside a video of {length} frames")
    before = [i for i in annotated_before if i < frame]
    after = [i for i in annotated_before if i > frame]
    stop_b = max(before) if before else None
    stop_f = min(after) if after else None
    first = stop_b + 1 if stop_b is not None else 0
    last = stop_f - 1 if stop_f is not None else length - 1
    return (Pass(tuple(range(frame - 1, first - 1, -1)), stop_b),
            Pass(tuple(range(frame + 1, last + 1)), stop_f))
