"""``clickmask segment``: one image, given clicks, to a mask PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from clickmask.cli.options import add_model
from clickmask.engine.clicks import Click
from clickmask.engine.loader import load_predictor
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError
from clickmask.io.images import load_image, save_png
from clickmask.visualize import overlay


def add_parser(sub) -> None:
    seg = sub.add_parser("segment", help="segment one image from given clicks")
    seg.set_defaults(run=run)
    seg.add_argument("image", type=Path)
    seg.add_argument("--click", action="append", required=True, metavar="X,Y[,neg]",
                     help="a click in pixels; append ',neg' for a negative click (repeatable)")
    add_model(seg)
    seg.add_argument("--out", type=Path, required=True, help="output mask PNG (0/255)")
    seg.add_argument("--overlay", type=Path, help="also write an overlay PNG")
    seg.add_argument("--allow-fallback", action="store_true",
                     help="use the GrabCut fallback when the model is missing")


def parse_click(text: str) -> Click:
    """``X,Y`` or ``X,Y,neg`` (pixels) -> Click."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        sign = parts[2].lower() if len(parts) == 3 else "pos"
        if sign not in ("pos", "neg", "+", "-"):
            raise ValueError
    except ValueError:
        raise ClickmaskError(f"invalid --click {text!r}: use X,Y or X,Y,neg (pixels)") from None
    return Click(x=x, y=y, positive=sign in ("pos", "+"))


def run(args: argparse.Namespace) -> int:
    clicks = [parse_click(c) for c in args.click]
    image = load_image(args.image)
    predictor = load_predictor(args.model, allow_fallback=args.allow_fallback)
    predictor.set_image(image)
    session = InteractiveSession(predictor)
    for click in clicks:
        session.add_click(click)
    mask = session.current_mask()
    save_png(args.out, (mask * 255).astype("uint8"))
    print(f"wrote {args.out} ({int(mask.sum())} object pixels, model {predictor.model_id})")
    if args.overlay:
        save_png(args.overlay, overlay(image, mask, clicks))
        print(f"wrote {args.overlay}")
    return 0
