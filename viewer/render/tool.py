"""`lightbox render SERIES_OR_FILE out.png`: headless rendering through the view composition the viewer uses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from viewer.render.lut import Window
from viewer.render.pipeline import presets_for
from viewer.render.png import write_png
from viewer.render.series import SeriesStack
from viewer.render.view import ViewState, compose


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a DICOM file, or a Series / SOP Instance UID in the local store")
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--frame", type=int, default=None, help="1-based frame (or slice of a series); default middle")
    parser.add_argument("--window", nargs=2, type=float, metavar=("CENTER", "WIDTH"), help="window to apply")
    parser.add_argument("--preset", help="preset name (e.g. Lung, Bone, or a window explanation in the file)")
    parser.add_argument("--invert", action="store_true", help="invert grey levels")
    parser.add_argument("--overlays", action="store_true", help="burn overlay planes (60xx) into the image")
    parser.add_argument("--sixteen-bit", action="store_true", help="write a 16-bit grey PNG (12-bit print values)")
    parser.add_argument("--presentation", type=Path, help="a presentation state file to apply (GSPS, colour, ...)")
    parser.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, help="rotate clockwise")
    parser.add_argument("--flip", action="store_true", help="flip horizontally")


def resolve_stack(source: str, home: Path | None) -> SeriesStack:
    path = Path(source)
    if path.is_file():
        return SeriesStack.from_paths([path])
    from viewer.core.context import AppContext

    store = AppContext.open(home, recover=False).store
    stack = SeriesStack.from_store(store, source)
    if len(stack):
        stack.sort_by_position()
        return stack
    instance = store.instance(source)
    if instance is not None:
        return SeriesStack.from_paths([instance.path])
    raise LookupError(f"{source} is neither a file nor a series or instance in the store")


def run_render(args: argparse.Namespace) -> int:
    try:
        stack = resolve_stack(args.source, getattr(args, "home", None))
    except (LookupError, OSError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    if not len(stack):
        print("render: nothing to display", file=sys.stderr)
        return 2
    index = (args.frame - 1) if args.frame else len(stack) // 2
    if not 0 <= index < len(stack):
        print(f"render: frame {args.frame} out of range 1..{len(stack)}", file=sys.stderr)
        return 2
    header = stack.header(index)
    voi = None
    if args.window:
        voi = Window(args.window[0], args.window[1])
    elif args.preset:
        matches = [p for p in presets_for(header) if p.name.lower() == args.preset.lower()]
        if not matches:
            names = ", ".join(p.name for p in presets_for(header)) or "none"
            print(f"render: no preset {args.preset!r} (available: {names})", file=sys.stderr)
            return 2
        voi = matches[0].voi
    ref = stack[index]
    state = ViewState(
        str(ref.path),
        ref.sop_instance_uid or "",
        ref.frame,
        voi=voi,
        presentation=str(args.presentation) if getattr(args, "presentation", None) else None,
        invert=args.invert,
        rotation=getattr(args, "rotate", 0) or 0,
        flip_h=bool(getattr(args, "flip", False)),
        show_overlays=args.overlays,
    )
    try:
        composed = compose(state, source=stack.source(index), output_bits=12 if args.sixteen_bit else 8)
    except (OSError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    write_png(args.output, composed.bitmap)
    applied = composed.lut.voi if composed.lut is not None else None
    detail = applied.label if applied is not None else "colour"
    print(
        f"{args.output}: {composed.bitmap.shape[1]}x{composed.bitmap.shape[0]} frame {index + 1}/{len(stack)} {detail}"
    )
    return 0
