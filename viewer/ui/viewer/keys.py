"""The viewport's key bindings, as one table (shown in tooltips and help; tested key by key).

``BINDINGS``: (key, description, action) rows; a key is a ``Qt.Key`` or a character (case-insensitive).
``handle_key(viewport, event) -> bool``: run the binding for a key press; False when none applies.

Up/Down/Left/Right/PageUp/PageDown/Home/End scroll; 1–9 presets (modality presets, then the file's windows);
0 back to the file's first window; I invert; F fit; A actual size (1:1); R rotate 90° clockwise; H/V flip;
S smooth / nearest-neighbour magnification; Space cine play/pause; O overlays on/off; Delete removes the
selected measurement; Esc ends a measurement tool and clears the selection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent

if TYPE_CHECKING:
    from viewer.ui.viewer.viewport import Viewport

Action = Callable[["Viewport"], object]


def _end(vp: Viewport) -> None:
    if vp.stack is not None:
        vp.set_index(len(vp.stack) - 1)


def _overlays(vp: Viewport) -> None:
    vp.show_overlays = not vp.show_overlays
    vp.rerender()


def _escape(vp: Viewport) -> None:
    vp.set_tool("none")
    vp.tools.select(None)


BINDINGS: list[tuple[Qt.Key | str, str, Action]] = [
    (Qt.Key.Key_Down, "next image", lambda vp: vp.scroll(1)),
    (Qt.Key.Key_Right, "next image", lambda vp: vp.scroll(1)),
    (Qt.Key.Key_Up, "previous image", lambda vp: vp.scroll(-1)),
    (Qt.Key.Key_Left, "previous image", lambda vp: vp.scroll(-1)),
    (Qt.Key.Key_PageDown, "10 images on", lambda vp: vp.scroll(10)),
    (Qt.Key.Key_PageUp, "10 images back", lambda vp: vp.scroll(-10)),
    (Qt.Key.Key_Home, "first image", lambda vp: vp.set_index(0)),
    (Qt.Key.Key_End, "last image", _end),
    ("0", "the file's window", lambda vp: vp.set_voi(None)),
    *[(str(n), f"preset {n}", lambda vp, n=n: vp.apply_preset(n)) for n in range(1, 10)],
    ("i", "invert", lambda vp: vp.set_invert(not vp.invert)),
    ("f", "fit", lambda vp: vp.fit()),
    ("a", "actual size (1:1)", lambda vp: vp.actual_size()),
    ("r", "rotate 90° clockwise", lambda vp: vp.rotate()),
    ("h", "flip horizontally", lambda vp: vp.set_flip(horizontal=not vp.flip_h)),
    ("v", "flip vertically", lambda vp: vp.set_flip(vertical=not vp.flip_v)),
    ("s", "smooth / nearest-neighbour magnification", lambda vp: vp.set_smooth(not vp.smooth)),
    ("o", "overlays on/off", _overlays),
    (Qt.Key.Key_Space, "cine play/pause", lambda vp: vp.toggle_cine()),
    (Qt.Key.Key_Delete, "delete the selected measurement", lambda vp: vp.delete_selected_measurement()),
    (Qt.Key.Key_Backspace, "delete the selected measurement", lambda vp: vp.delete_selected_measurement()),
    (Qt.Key.Key_Escape, "end the measurement tool", _escape),
]

_BY_KEY: dict[int, Action] = {int(k.value): a for k, _d, a in BINDINGS if isinstance(k, Qt.Key)}
_BY_TEXT: dict[str, Action] = {k: a for k, _d, a in BINDINGS if isinstance(k, str)}


def handle_key(viewport: Viewport, event: QKeyEvent) -> bool:
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
        return False  # Ctrl/Alt combinations are the window's shortcuts (Ctrl+T tags…)
    action = _BY_KEY.get(int(event.key()))
    if action is None:
        action = _BY_TEXT.get(event.text().lower())
    if action is None:
        return False
    action(viewport)
    return True
