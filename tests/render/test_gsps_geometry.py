"""Where annotations land on the display after rotation, flip and zoom (half-pixel convention).

Expected positions are worked out independently of `displaylist`: the transformed position of a pixel is
found by rotating/flipping an index image with numpy, and a pixel's centre is at +0.5 on the display.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from viewer.render.displaylist import (
    DisplayedArea,
    DisplayList,
    GraphicItem,
    SpatialTransform,
    TextItem,
    rasterize,
)
from viewer.render.gsps import annotations, cielab_to_rgb, rgb_to_cielab

SIZE = 64
RED = (255, 0, 0)


def blank_list(rotation: int = 0, flip: bool = False, area: DisplayedArea | None = None, items=()) -> DisplayList:
    spatial = SpatialTransform(SIZE, SIZE, rotation, flip)
    bitmap = np.full((SIZE, SIZE), 40, dtype=np.uint8)
    return DisplayList(
        spatial.apply_to_array(bitmap), spatial, area or DisplayedArea.whole_image(SIZE, SIZE), list(items)
    )


def transformed_index(col: int, row: int, rotation: int, flip: bool) -> tuple[int, int]:
    """0-based (x, y) of image pixel (col, row) (1-based) after the transformation, via numpy on an index image."""
    index = np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    moved = np.rot90(index, k=-(rotation // 90))
    if flip:
        moved = moved[:, ::-1]
    y, x = np.argwhere(moved == (row - 1) * SIZE + (col - 1))[0]
    return int(x), int(y)


def test_pixel_corner_and_centre_convention():
    view = blank_list().view(128, 128)  # scale to fit: 2 device pixels per image pixel
    np.testing.assert_allclose(view.image_to_display([(0, 0), (0.5, 0.5), (64, 64)]), [(0, 0), (1, 1), (128, 128)])
    # the centre of device pixel (0, 0) is a quarter of the way into the first image pixel
    np.testing.assert_allclose(view.display_to_image([(0.5, 0.5)]), [(0.25, 0.25)])
    assert view.area_rect == (0.0, 0.0, 128.0, 128.0)


@pytest.mark.parametrize(
    ("rotation", "flip", "zoom"), [(0, False, 3), (90, False, 3), (180, True, 2), (270, False, 4), (90, True, 3)]
)
def test_polyline_vertices_land_on_expected_pixels(rotation, flip, zoom):
    vertices = [(5, 10), (40, 20), (60, 60)]  # (column, row), 1-based pixels
    centres = tuple((c - 0.5, r - 0.5) for c, r in vertices)
    area = DisplayedArea((1, 1), (SIZE, SIZE), "MAGNIFY", magnification=zoom)
    dl = blank_list(rotation, flip, area, [GraphicItem("POLYLINE", centres, "PIXEL", color=RED)])
    size = SIZE * zoom
    layout = dl.layout(size, size)
    expected = []
    for c, r in vertices:
        x, y = transformed_index(c, r, rotation, flip)
        expected.append(((x + 0.5) * zoom, (y + 0.5) * zoom))
    np.testing.assert_allclose(layout.graphics[0].points, expected)
    np.testing.assert_allclose(layout.view.display_to_image(expected), centres)
    raster = rasterize(dl, size, size)
    for ex, ey in expected:
        assert tuple(raster[int(ey), int(ex)]) == RED  # the device pixel holding the vertex is drawn


@pytest.mark.parametrize(("rotation", "flip"), [(0, False), (90, False), (270, True)])
def test_anchor_point_in_pixel_units(rotation, flip):
    text = TextItem("lesion", anchor=(30.5, 12.5), anchor_units="PIXEL", anchor_visible=True, color=RED)
    dl = blank_list(rotation, flip, items=[text])
    layout = dl.layout(256, 256)  # scale to fit: 4 device pixels per image pixel
    x, y = transformed_index(31, 13, rotation, flip)
    assert layout.texts[0].anchor == pytest.approx(((x + 0.5) * 4, (y + 0.5) * 4))


@pytest.mark.parametrize("filled", [False, True])
def test_circle_in_display_units_is_round_on_screen(filled):
    circle = GraphicItem("CIRCLE", ((0.5, 0.5), (0.75, 0.5)), "DISPLAY", filled=filled, color=RED)
    dl = blank_list(90, True, items=[circle])
    layout = dl.layout(300, 200)  # the 64×64 area scales to 200×200, centred: x 50..250
    assert layout.view.area_rect == pytest.approx((50, 0, 250, 200))
    (cx, cy), u, v = layout.graphics[0].ellipse
    assert (cx, cy) == pytest.approx((150, 100))
    assert np.hypot(*u) == pytest.approx(50) and np.hypot(*v) == pytest.approx(50)
    raster = rasterize(dl, 300, 200)
    for px, py in [(200, 100), (100, 100), (150, 50), (150, 150)]:  # on the circle
        near = raster[py - 1 : py + 2, px - 1 : px + 2].reshape(-1, 3)
        assert any(tuple(p) == RED for p in near)
    red = np.all(raster == RED, axis=2)
    ys, xs = np.nonzero(red)
    radii = np.hypot(xs + 0.5 - 150, ys + 0.5 - 100)
    if filled:
        assert red[100, 150] and radii.max() <= 51.5
    else:
        assert not red[100, 150] and radii.min() >= 48.5 and radii.max() <= 51.5


def test_displayed_area_corners_follow_the_transformation():
    # with a horizontal flip the pixel that ends up top-left is image column 64, row 1
    area = DisplayedArea((64, 1), (33, 32), "MAGNIFY", magnification=2)
    dl = blank_list(0, True, area)
    view = dl.view(64, 64)
    # the area is columns 33..64, rows 1..32; its top-right image corner is the display's top-left
    np.testing.assert_allclose(view.image_to_display([(64, 0), (32, 32)]), [(0, 0), (64, 64)])
    assert view.area_rect == pytest.approx((0, 0, 64, 64))


def test_pixel_aspect_ratio_and_true_size():
    tall = DisplayedArea((1, 1), (SIZE, SIZE), aspect_ratio=(2, 1))
    view = blank_list(area=tall).view(256, 256)
    assert view.area_rect == pytest.approx((64, 0, 192, 256))  # pixels twice as tall as wide
    rotated = blank_list(90, area=tall).view(256, 256)
    assert rotated.area_rect == pytest.approx((0, 64, 256, 192))  # after 90°, twice as wide
    true_size = DisplayedArea((1, 1), (SIZE, SIZE), "TRUE SIZE", pixel_spacing=(0.5, 0.5))
    view = blank_list(area=true_size).view(300, 300, display_pixel_mm=0.25)
    assert view.scale == pytest.approx((2.0, 2.0))


def _lab(rgb) -> list[int]:
    return list(rgb_to_cielab(rgb))


def test_annotation_parsing_layers_units_and_colours():
    ps = Dataset()
    top, bottom = Dataset(), Dataset()
    top.GraphicLayer, top.GraphicLayerOrder = "TOP", 2
    top.GraphicLayerRecommendedDisplayCIELabValue = _lab((0, 255, 0))
    bottom.GraphicLayer, bottom.GraphicLayerOrder = "BOTTOM", 1
    bottom.GraphicLayerRecommendedDisplayGrayscaleValue = 0x8000
    ps.GraphicLayerSequence = [top, bottom]
    ann_top, ann_bottom = Dataset(), Dataset()
    ann_top.GraphicLayer = "TOP"
    text = Dataset()
    text.BoundingBoxAnnotationUnits = "DISPLAY"
    text.UnformattedTextValue = "Of interest"
    text.BoundingBoxTopLeftHandCorner = [0.1, 0.1]
    text.BoundingBoxBottomRightHandCorner = [0.6, 0.2]
    text.BoundingBoxTextHorizontalJustification = "RIGHT"
    ann_top.TextObjectSequence = [text]
    ann_bottom.GraphicLayer = "BOTTOM"
    graphics = []
    for kind, data, filled in [
        ("ELLIPSE", [10, 20, 30, 20, 20, 15, 20, 25], "Y"),
        ("INTERPOLATED", [1, 1, 10, 5, 20, 1], None),
        ("POINT", [7, 7], None),
    ]:
        g = Dataset()
        g.GraphicAnnotationUnits, g.GraphicDimensions = "PIXEL", 2
        g.NumberOfGraphicPoints, g.GraphicData, g.GraphicType = len(data) // 2, data, kind
        if filled:
            g.GraphicFilled = filled
        graphics.append(g)
    ann_bottom.GraphicObjectSequence = graphics
    ps.GraphicAnnotationSequence = [ann_top, ann_bottom]

    items = annotations(ps, "1.2.3", 0)
    assert [type(i).__name__ for i in items] == ["GraphicItem", "GraphicItem", "GraphicItem", "TextItem"]
    ellipse, interpolated, point, label = items
    assert ellipse.kind == "ELLIPSE" and ellipse.filled and ellipse.color == (128, 128, 128)
    assert interpolated.kind == "INTERPOLATED" and len(interpolated.points) == 3
    assert point.points == ((7.0, 7.0),)
    assert label.color == cielab_to_rgb(_lab((0, 255, 0))) == (0, 255, 0)
    assert label.justification == "RIGHT" and label.box_units == "DISPLAY"
    layout = blank_list(items=items).layout(128, 128)
    assert layout.texts[0].box == pytest.approx((12.8, 12.8, 76.8, 25.6))
    assert layout.texts[0].text_origin(20, 10) == pytest.approx((56.8, 12.8))
    (cx, cy), u, v = layout.graphics[0].ellipse
    assert (cx, cy) == pytest.approx((40, 40)) and np.hypot(*u) == pytest.approx(20) and np.hypot(*v) == 10
    assert len(layout.graphics[1].points) > 3  # the curve is sampled through the three vertices
