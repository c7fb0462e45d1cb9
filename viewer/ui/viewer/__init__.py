"""The 2D image viewer: `ViewerArea` (layouts, toolbar, shared frame cache) and `Viewport` (one image view).

Engineer A's main window creates ``ViewerArea(ctx, parent)`` and calls ``open_series(series_uid)``.
Presentation-state drawing hooks into ``Viewport.add_overlay_layer`` (see `viewport.py`).
"""

from viewer.ui.viewer.area import LAYOUTS, ViewerArea
from viewer.ui.viewer.viewport import MEASURE_TOOLS, Viewport

__all__ = ["LAYOUTS", "MEASURE_TOOLS", "ViewerArea", "Viewport"]
