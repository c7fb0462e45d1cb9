"""The graphics item that shows a rendered frame (uint8 grey or RGB) in image pixel coordinates.

pyqtgraph's ImageItem is not used for the image itself: with PySide6 6.12 its uint8-with-levels path (an indexed
QImage with a colour table) leaks references to None on every frame and crashes a long cine loop, and the
pipeline already produces final display values, so a plain QImage over the numpy buffer is all that is needed.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter


class FrameItem(pg.GraphicsObject):
    """Draws `image` (rows×cols uint8, or rows×cols×3 uint8) with pixel (c, r) covering c..c+1, r..r+1."""

    def __init__(self) -> None:
        super().__init__()
        self.image: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._buffer: np.ndarray | None = None
        self._rect = QRectF()

    def setImage(self, pixels: np.ndarray, *, update_scene: bool = True) -> None:
        """Show `pixels`; `update_scene=False`: the caller repaints the view itself (same size only)."""
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        rows, cols = pixels.shape[:2]
        if pixels.ndim == 2:
            fmt, stride = QImage.Format.Format_Grayscale8, cols
        else:
            fmt, stride = QImage.Format.Format_RGB888, cols * 3
        self._buffer = pixels  # the QImage points into this buffer: keep it alive as long as the image
        self._qimage = QImage(pixels.data, cols, rows, stride, fmt)
        self.image = pixels
        rect = QRectF(0, 0, cols, rows)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
            update_scene = True
        if update_scene:
            self.update()

    def clear(self) -> None:
        self.prepareGeometryChange()
        self.image = self._qimage = self._buffer = None
        self._rect = QRectF()
        self.update()

    def width(self) -> int:
        return int(self._rect.width())

    def height(self) -> int:
        return int(self._rect.height())

    def boundingRect(self) -> QRectF:
        return QRectF(self._rect)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self._qimage is not None:
            painter.drawImage(self._rect, self._qimage)
