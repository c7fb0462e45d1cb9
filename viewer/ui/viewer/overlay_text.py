"""Text and the scale bar drawn over an image: legible on any grey level, sized to the viewport.

``OverlayLabel``: a QLabel that paints its text with a dark outline (the reading-room convention: the corner
    texts must stay legible over white bone as over black air).
``overlay_pixel_size(width, height) -> int``: the text size for a viewport (follows the viewport, within limits).
``ScaleBarWidget``: a calibrated bar with its length (``set_bar(ScaleBar | None)``).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

from viewer.render.measure import ScaleBar

TEXT_COLOUR = QColor(0xE8, 0xE8, 0xA0)
OUTLINE_COLOUR = QColor(0, 0, 0)
MIN_PIXELS, MAX_PIXELS = 9, 20
_OFFSETS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))


def overlay_pixel_size(width: int, height: int) -> int:
    """About 1/45 of the viewport's shorter side: 13 px on a 600 px viewport, the 9 px floor in a small tile."""
    return max(MIN_PIXELS, min(MAX_PIXELS, round(min(width, height) / 45)))


def overlay_font(pixel_size: int) -> QFont:
    font = QFont()
    font.setPixelSize(pixel_size)
    return font


class OverlayLabel(QLabel):
    """Outlined text; ``text()``, ``setText``, alignment and sizing are QLabel's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("background: transparent;")
        self.setContentsMargins(2, 1, 2, 1)  # room for the outline

        self._pixmap: QPixmap | None = None
        self._pixmap_key: tuple | None = None

    def paintEvent(self, event) -> None:
        text = self.text()
        if not text:
            return
        # The label is repainted whenever the image under it is (a transparent child over the view), several
        # times per frame in a 2×2 layout: the outlined text is drawn once into a pixmap and blitted after.
        ratio = self.devicePixelRatioF()
        key = (text, self.font().key(), self.width(), self.height(), int(self.alignment()), ratio)
        if key != self._pixmap_key or self._pixmap is None:
            size = (max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
            rect = QRectF(self.contentsRect())
            flags = int(self.alignment())
            # the text laid out once in black, blitted at eight offsets, then the text itself: an outline
            # without the cost of a blur effect or of laying the text out nine times
            outline = QPixmap(*size)
            outline.setDevicePixelRatio(ratio)
            outline.fill(Qt.GlobalColor.transparent)
            painter = QPainter(outline)
            painter.setFont(self.font())
            painter.setPen(OUTLINE_COLOUR)
            painter.drawText(rect, flags, text)
            painter.end()
            pixmap = QPixmap(*size)
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            for dx, dy in _OFFSETS:
                painter.drawPixmap(QPointF(dx, dy), outline)
            painter.setFont(self.font())
            painter.setPen(TEXT_COLOUR)
            painter.drawText(rect, flags, text)
            painter.end()
            self._pixmap, self._pixmap_key = pixmap, key
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        painter.end()


class ScaleBarWidget(QWidget):
    """A horizontal bar of a round physical length with its label, outlined like the text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.bar: ScaleBar | None = None
        self._font_key = ""
        self._pixmap: QPixmap | None = None
        self._pixmap_key: tuple | None = None

    def set_bar(self, bar: ScaleBar | None) -> None:
        if bar == self.bar and self.isHidden() == (bar is None) and self._font_key == self.font().key():
            return  # the same bar (every frame shown asks again): no relayout, no repaint
        self._font_key = self.font().key()
        self.bar = bar
        self.setVisible(bar is not None)
        metrics = self.fontMetrics()
        if bar is not None:
            width = max(round(bar.pixels), metrics.horizontalAdvance(bar.label)) + 6
            self.resize(width, metrics.height() + 10)
        self.update()

    def paintEvent(self, event) -> None:
        bar = self.bar
        if bar is None:
            return
        # repainted with the image under it on every frame: drawn once per bar into a pixmap, then blitted
        ratio = self.devicePixelRatioF()
        key = (bar, self.font().key(), self.width(), self.height(), ratio)
        if key != self._pixmap_key or self._pixmap is None:
            pixmap = QPixmap(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.GlobalColor.transparent)
            self._draw(QPainter(pixmap), bar)
            self._pixmap, self._pixmap_key = pixmap, key
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        painter.end()

    def _draw(self, painter: QPainter, bar: ScaleBar) -> None:
        painter.setFont(self.font())
        x0 = (self.width() - bar.pixels) / 2
        x1 = x0 + bar.pixels
        y = self.height() - 4.0
        for colour, width in ((OUTLINE_COLOUR, 4.0), (TEXT_COLOUR, 2.0)):
            pen = QPen(colour)
            pen.setWidthF(width)
            painter.setPen(pen)
            painter.drawLine(QPointF(x0, y), QPointF(x1, y))
            painter.drawLine(QPointF(x0, y), QPointF(x0, y - 5))
            painter.drawLine(QPointF(x1, y), QPointF(x1, y - 5))
        text_rect = QRectF(0, 0, self.width(), self.height() - 7)
        flags = int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom)
        painter.setPen(OUTLINE_COLOUR)
        for dx, dy in _OFFSETS:
            painter.drawText(text_rect.translated(dx, dy), flags, bar.label)
        painter.setPen(TEXT_COLOUR)
        painter.drawText(text_rect, flags, bar.label)
        painter.end()
