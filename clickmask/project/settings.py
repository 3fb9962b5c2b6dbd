"""The project settings a user may change through the app, each with its check.

Other rows of the ``settings`` table (``schema_version``, the click banks, the
granularity memory) belong to the app and are neither shown nor writable
through the API.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from clickmask.errors import ClickmaskError
from clickmask.project.errors import NotFoundError

MAX_TOLERANCE = 50.0  # pixels: the polygon simplification tolerance
MAX_SHORTCUTS = 100
MAX_KEY = 40  # characters of an action name or a key string such as "ctrl+shift+z"


def _tolerance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_TOLERANCE:
        raise ClickmaskError(f"polygon_tolerance must be a number of pixels from 0 to {MAX_TOLERANCE:g}, got {value!r:.50}")
    return float(value)


#: A first-click proposal is shown when its confidence reaches this level (the user sets it; by default every
#: proposal shows: the object map learns unannotated instances of an image as background, so a right proposal
#: can have a low confidence, and no level was measured to separate right from wrong ones yet).
DEFAULT_PROPOSAL_CONFIDENCE = 0.0


def _confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise ClickmaskError(f"proposal_confidence must be a number from 0 to 1, got {value!r:.50}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ClickmaskError(f"opo_enabled must be true or false, got {value!r:.50}")
    return value


def _shortcuts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_SHORTCUTS or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= MAX_KEY and 0 < len(v) <= MAX_KEY
            for k, v in value.items()):
        raise ClickmaskError(f"shortcuts must map at most {MAX_SHORTCUTS} action names to key strings "
                             f"(each 1 to {MAX_KEY} characters)")
    return dict(value)


USER_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "polygon_tolerance": _tolerance,
    "opo_enabled": _flag,
    "proposal_confidence": _confidence,
    "shortcuts": _shortcuts,
}


def user_setting(key: str) -> str:
    """``key`` if it is a user setting, else NotFoundError."""
    if key not in USER_SETTINGS:
        raise NotFoundError(f"no setting {key[:50]!r}: the settings are {', '.join(USER_SETTINGS)}")
    return key


def check_setting(key: str, value: Any) -> Any:
    """``value`` checked (and normalised) for the user setting ``key``; NotFoundError for any other key."""
    return USER_SETTINGS[user_setting(key)](value)


def stored_tolerance(value: Any, default: float = 1.0) -> float:
    """The polygon tolerance from a stored value; ``default`` when it is missing or not valid."""
    try:
        return _tolerance(value)
    except ClickmaskError:
        return default


def stored_confidence(value: Any) -> float:
    """The proposals' confidence level from a stored value; the default when it is missing or not valid."""
    try:
        return _confidence(value)
    except ClickmaskError:
        return DEFAULT_PROPOSAL_CONFIDENCE
