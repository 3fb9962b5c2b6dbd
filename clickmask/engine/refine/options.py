"""The inference options: which refinement steps run, each with its own parameters.

``InferenceOptions.parse("zoom,zoom_expand=1.6")`` builds them from text (the
``--infer`` of ``clickmask eval`` and ``clickmask serve``); ``None`` or
``"default"`` gives :data:`RECOMMENDED`, ``"raw"`` the model alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from clickmask.errors import ClickmaskError

FIRST_RULES = ("sam", "central", "finest")

# The configuration the app and `clickmask eval` use by default: a better first mask
# (first=central), the second click cannot wipe it out (local until click 2), a crop
# refines from click 3 (zoom), the edge follows the image (boundary) and ignored clicks
# count (honor). Why: docs/decisions/0001-default-inference-options.md.
RECOMMENDED = "first=central,local,local_until=2,zoom,zoom_expand=1.8,zoom_from=3,boundary,honor"


@dataclass(frozen=True)
class InferenceOptions:
    """Switches and parameters of the refinement steps (all off by default: the raw model).

    - ``first``: the first click's mask token: ``sam`` (best predicted IoU of
      tokens 1-3), ``central`` (predicted IoU x how central the click lies in
      the candidate) or ``finest`` (token 1, the finest reading), :mod:`.first_click`.
    - ``cfr`` / ``acfr``: Cascade-Forward Refinement (CFR-ICL), :mod:`.cfr`.
    - ``zoom`` (``zoom_from``, ``zoom_expand``, ``zoom_min``, ``zoom_max_frac``):
      refine in a crop around the object at full model resolution, :mod:`.zoom`.
    - ``local`` (``local_k``, ``local_keep``, ``local_until``): a click changes
      the mask near itself only, :mod:`.local`.
    - ``flip``: average with the prediction on the mirrored image, :mod:`.flip`.
    - ``honor`` (``honor_radius``): a click the mask ignores adds or removes the
      small region of similar colour around it, :mod:`clickmask.engine.click_regions`.
    - ``boundary``: the mask edge follows image edges, :mod:`clickmask.engine.boundary`.
    """

    first: str = "sam"
    cfr: int = 0
    acfr: int = 0
    zoom: bool = False
    zoom_from: int = 2
    zoom_expand: float = 1.4
    zoom_min: int = 200
    zoom_max_frac: float = 0.8
    local: bool = False
    local_k: float = 2.5
    local_keep: float = 0.7
    local_until: int = 0
    flip: bool = False
    honor: bool = False
    honor_radius: float = 0.05
    boundary: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "InferenceOptions":
        """Parse ``"cfr=1,zoom,zoom_expand=1.6"`` (bare names switch a flag on).

        None or ``"default"`` gives :data:`RECOMMENDED` (what the app and
        ``clickmask eval`` use unless told otherwise); ``""``, ``"raw"`` or
        ``"none"`` give the raw model (every option off).
        """
        if text is None or text.strip() == "default":
            text = RECOMMENDED
        if text.strip() in ("", "raw", "none"):
            return cls()
        types = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for item in (p.strip() for p in text.split(",") if p.strip()):
            name, _, raw = item.partition("=")
            name = name.strip()
            if name not in types:
                raise ClickmaskError(
                    f"unknown inference option {name!r}; known: {', '.join(sorted(types))}"
                )
            kind = types[name]
            try:
                if kind in ("bool", bool):
                    values[name] = raw.strip().lower() not in ("0", "false", "off", "no") if raw else True
                elif kind in ("int", int):
                    values[name] = int(raw)
                elif kind in ("float", float):
                    values[name] = float(raw)
                else:
                    values[name] = raw.strip()
            except ValueError:
                raise ClickmaskError(f"inference option {item!r}: expected a {kind} value") from None
        opts = cls(**values)
        if opts.first not in FIRST_RULES:
            raise ClickmaskError(f"inference option first={opts.first!r}: use {' or '.join(map(repr, FIRST_RULES))}")
        return opts

    def changed(self) -> dict:
        """The options that differ from the defaults (for reports)."""
        default = asdict(InferenceOptions())
        return {k: v for k, v in asdict(self).items() if v != default[k]}
