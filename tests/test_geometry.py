"""Tests for clickmask.geometry: mask <-> polygon conversion and COCO RLE."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.geometry import (
    Polygon,
    join_rings,
    decode_rle,
    encode_rle,
    mask_bbox,
    mask_to_polygons,
    polygon_area,
    polygon_to_coco,
    polygons_area,
    polygons_to_coco,
    polygons_to_mask,
    rle_area,
    rle_bbox,
    simplify,
)

mask_api = pytest.importorskip("pycocotools.mask")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < r**2


def round_trip(mask: np.ndarray, **kwargs: object) -> tuple[list[Polygon], np.ndarray]:
    polys = mask_to_polygons(mask, **kwargs)
    return polys, polygons_to_mask(polys, mask.shape)


@pytest.fixture
def two_parts_with_hole() -> np.ndarray:
    """A 160x240 mask: a ring-shaped disc (hole in the middle) and a rectangle."""
    m = disc((160, 240), 70, 80, 60) & ~disc((160, 240), 70, 80, 25)
    m[30:130, 150:220] = True
    return m


# --------------------------------------------------------------------------- #
# mask -> polygons -> mask
# --------------------------------------------------------------------------- #
def test_round_trip_two_parts_with_hole(two_parts_with_hole: np.ndarray) -> None:
    m = two_parts_with_hole
    polys, back = round_trip(m)
    assert len(polys) == 2
    assert sorted(len(p.holes) for p in polys) == [0, 1]
    assert iou(back, m) >= 0.99
    assert np.array_equal(back, m)  # the representation is exact
    assert polygons_area(polys) == m.sum()


def test_polygon_arrays_and_conventions() -> None:
    m = np.zeros((5, 6), dtype=bool)
    m[1:3, 2:5] = True  # rows 1-2, columns 2-4
    (poly,) = mask_to_polygons(m)
    assert poly.exterior.dtype == np.float64 and poly.exterior.shape == (4, 2)
    assert poly.holes == []
    # Vertices on pixel corners, (x, y), exterior starts top-left, clockwise on screen.
    np.testing.assert_array_equal(poly.exterior, [[2, 1], [5, 1], [5, 3], [2, 3]])
    assert polygon_area(poly.exterior) == 6.0
    assert not poly.exterior.flags.writeable
    with pytest.raises(AttributeError):
        poly.exterior = np.zeros((3, 2))  # type: ignore[misc]


def test_hole_orientation_and_areas() -> None:
    m = np.ones((5, 5), dtype=bool)
    m[1:4, 1:4] = False
    m[2, 2] = True  # island inside the hole
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    outer, island = polys
    assert len(outer.holes) == 1 and island.holes == []
    np.testing.assert_array_equal(island.exterior, [[2, 2], [3, 2], [3, 3], [2, 3]])
    assert polygon_area(outer.exterior) == 25 and polygon_area(outer.holes[0]) == 9
    assert polygons_area(polys) == m.sum() == 17
    assert np.array_equal(polygons_to_mask(polys, m.shape), m)
    # The outer polygon alone has the hole cut out, the island alone is one pixel.
    assert polygons_to_mask([outer], m.shape).sum() == 16
    assert polygons_to_mask([island], m.shape).sum() == 1


def test_island_in_hole_in_island() -> None:
    m = disc((200, 200), 100, 100, 90) & ~disc((200, 200), 100, 100, 60)
    m |= disc((200, 200), 100, 100, 40) & ~disc((200, 200), 100, 100, 20)
    m |= disc((200, 200), 100, 100, 8)
    polys, back = round_trip(m)
    assert [len(p.holes) for p in polys] == [1, 1, 0]
    assert np.array_equal(back, m)
    assert polygons_area(polys) == m.sum()


def test_single_pixels_and_thin_lines_survive() -> None:
    m = np.zeros((20, 30), dtype=bool)
    m[2, 3] = True  # single pixel
    m[5, 2:25] = True  # horizontal 1-px line
    m[8:19, 28] = True  # vertical 1-px line
    idx = np.arange(10)
    m[8 + idx, 5 + idx] = True  # diagonal line (8-connected)
    polys, back = round_trip(m)
    assert len(polys) == 4
    assert np.array_equal(back, m)
    assert polygons_area(polys) == m.sum()


def test_connectivity_of_diagonal_pixels() -> None:
    m = np.array([[1, 0], [0, 1]], dtype=bool)
    assert len(mask_to_polygons(m)) == 1  # 8-connected by default
    assert len(mask_to_polygons(m, connectivity=4)) == 2
    for conn in (4, 8):
        assert np.array_equal(round_trip(m, connectivity=conn)[1], m)
    # Pixels enclosing a diagonal background gap: a hole with 8-connectivity only.
    ring = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    assert [len(p.holes) for p in mask_to_polygons(ring)] == [1]
    assert len(mask_to_polygons(ring, connectivity=4)) == 4


def test_border_touching_and_full_masks() -> None:
    m = np.zeros((40, 50), dtype=bool)
    m[:10, :] = True  # touches top, left and right borders
    m[25:, 30:] = True  # bottom-right corner
    m[20, 0] = True
    polys, back = round_trip(m)
    assert np.array_equal(back, m)
    full = np.ones((7, 9), dtype=bool)
    (poly,) = mask_to_polygons(full)
    np.testing.assert_array_equal(poly.exterior, [[0, 0], [9, 0], [9, 7], [0, 7]])
    assert np.array_equal(polygons_to_mask([poly], full.shape), full)


def test_empty_mask() -> None:
    assert mask_to_polygons(np.zeros((10, 10), dtype=bool)) == []
    assert mask_to_polygons(np.zeros((0, 5), dtype=bool)) == []
    assert polygons_to_mask([], (3, 4)).shape == (3, 4)
    assert not polygons_to_mask([], (3, 4)).any()
    assert polygons_area([]) == 0.0


@pytest.mark.parametrize("connectivity", [4, 8])
def test_random_masks_round_trip_exactly(connectivity: int) -> None:
    rng = np.random.default_rng(1234)
    for _ in range(200):
        h, w = rng.integers(1, 16, size=2)
        m = rng.random((h, w)) < rng.random()
        polys, back = round_trip(m, connectivity=connectivity)
        assert np.array_equal(back, m)
        assert polygons_area(polys) == m.sum()


def test_integer_masks_are_accepted() -> None:
    m = np.zeros((6, 6), dtype=np.uint8)
    m[1:4, 2:5] = 255
    assert np.array_equal(polygons_to_mask(mask_to_polygons(m), m.shape), m > 0)


def test_rasterisation_samples_pixel_centres() -> None:
    # A square from (0.6, 0.6) to (2.4, 2.4) contains only the centres (1.5, 1.5) ...
    sq = Polygon([[0.6, 0.6], [2.4, 0.6], [2.4, 2.4], [0.6, 2.4]])
    expected = np.zeros((4, 4), dtype=bool)
    expected[1, 1] = True
    assert np.array_equal(polygons_to_mask([sq], (4, 4)), expected)
    # ... overlapping polygons are united, and parts outside the image clipped.
    big = Polygon([[-5, -5], [2, -5], [2, 2], [-5, 2]])
    out = polygons_to_mask([sq, big], (4, 4))
    assert out[:2, :2].all() and out.sum() == 4
    # Triangle: centres below the diagonal of a 4x4 square.
    tri = Polygon([[0, 0], [4, 4], [0, 4]])
    np.testing.assert_array_equal(polygons_to_mask([tri], (4, 4)), np.tril(np.ones((4, 4), bool)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2 copy keyword
def test_matches_pycocotools_polygon_rasterisation() -> None:
    m = disc((160, 240), 60, 70, 45)
    m[20:140, 150:200] = True
    h, w = m.shape
    rles = mask_api.frPyObjects(polygons_to_coco(mask_to_polygons(m)), h, w)
    coco = mask_api.decode(mask_api.merge(rles)).astype(bool)
    assert iou(coco, m) >= 0.99
    assert np.array_equal(coco, m)  # same corner convention as COCO


# --------------------------------------------------------------------------- #
# Simplification
# --------------------------------------------------------------------------- #
def test_simplify_circle() -> None:
    m = disc((300, 300), 150, 150, 120)
    exact = mask_to_polygons(m)
    simple = mask_to_polygons(m, tolerance=1.0)
    assert len(simple) == 1
    assert len(simple[0].exterior) < len(exact[0].exterior) / 3
    assert iou(polygons_to_mask(simple, m.shape), m) >= 0.95
    assert iou(polygons_to_mask(mask_to_polygons(m, tolerance=0.5), m.shape), m) >= 0.98


def test_simplify_keeps_holes_and_vertices_subset(two_parts_with_hole: np.ndarray) -> None:
    m = two_parts_with_hole
    exact = mask_to_polygons(m)
    simple = mask_to_polygons(m, tolerance=1.5)
    assert [len(p.holes) for p in simple] == [len(p.holes) for p in exact]
    assert iou(polygons_to_mask(simple, m.shape), m) >= 0.95
    for e, s in zip(exact, simple):
        ext = {tuple(v) for v in e.exterior}
        assert {tuple(v) for v in s.exterior} <= ext


def test_simplify_ring_rules() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    np.testing.assert_array_equal(simplify(square, 0), square)
    np.testing.assert_array_equal(simplify(square, 0.5), square)
    # Collapses at tolerance 1 but is not smaller than 1**2: all 4 corners kept.
    np.testing.assert_array_equal(simplify(square, 1.0), square)
    assert simplify(square, 1.5).shape == (0, 2)  # collapsed and area 1 < 2.25
    # Collinear points go away, never below 3 vertices.
    line = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [3, 3], [0, 3]], dtype=float)
    np.testing.assert_array_equal(simplify(line, 0.1), [[0, 0], [3, 0], [3, 3], [0, 3]])
    triangle = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    np.testing.assert_array_equal(simplify(triangle, 100), triangle)
    with pytest.raises(ClickmaskError):
        simplify(square, -1)
    with pytest.raises(ClickmaskError):
        simplify(np.zeros((4, 3)), 1)


def test_small_parts_with_tolerance() -> None:
    m = np.zeros((10, 10), dtype=bool)
    m[2, 2] = True
    m[6:9, 5:8] = True
    polys = mask_to_polygons(m, tolerance=1.0)
    assert np.array_equal(polygons_to_mask(polys, m.shape), m)  # small squares kept whole
    assert len(mask_to_polygons(m, tolerance=2.0)) == 1  # the single pixel is dropped


# --------------------------------------------------------------------------- #
# Areas and COCO polygons
# --------------------------------------------------------------------------- #
def test_areas() -> None:
    assert polygon_area([[0, 0], [4, 0], [4, 3], [0, 3]]) == 12.0
    assert polygon_area([[0, 0], [0, 3], [4, 3], [4, 0]]) == 12.0  # orientation ignored
    assert polygon_area(np.zeros((0, 2))) == 0.0
    poly = Polygon([[0, 0], [4, 0], [4, 4], [0, 4]], holes=[[[1, 1], [1, 2], [2, 2], [2, 1]]])
    assert polygons_area([poly]) == 15.0


def test_polygon_to_coco() -> None:
    m = np.zeros((5, 5), dtype=bool)
    m[1:4, 1:4] = True
    (poly,) = mask_to_polygons(m)
    assert polygon_to_coco(poly) == [[1.0, 1.0, 4.0, 1.0, 4.0, 4.0, 1.0, 4.0]]
    assert poly.to_flat() == polygon_to_coco(poly)[0]
    m[2, 2] = False
    (holed,) = mask_to_polygons(m)
    assert len(polygon_to_coco(holed)) == 1  # the hole cannot be expressed
    with pytest.raises(ClickmaskError):
        polygon_to_coco(holed, strict=True)


def test_polygon_validation() -> None:
    with pytest.raises(ClickmaskError):
        Polygon(np.zeros((4, 3)))
    with pytest.raises(ClickmaskError):
        Polygon([[0, 0], [1, np.nan], [1, 1]])
    with pytest.raises(ClickmaskError):
        Polygon([[0, 0], [1, 0], [1, 1]], holes=np.zeros((3, 2)))  # type: ignore[arg-type]
    with pytest.raises(ClickmaskError):
        mask_to_polygons(np.zeros((3, 3, 3), dtype=bool))
    with pytest.raises(ClickmaskError):
        mask_to_polygons(np.zeros((3, 3), dtype=float))
    with pytest.raises(ClickmaskError):
        mask_to_polygons(np.zeros((3, 3), dtype=bool), tolerance=-1)
    with pytest.raises(ClickmaskError):
        mask_to_polygons(np.zeros((3, 3), dtype=bool), connectivity=6)
    with pytest.raises(ClickmaskError):
        polygons_to_mask([np.zeros((3, 2))], (3, 3))  # type: ignore[list-item]
    with pytest.raises(ClickmaskError):
        polygons_to_mask([], (-1, 3))
    a = Polygon([[0, 0], [1, 0], [1, 1]])
    assert a == Polygon(np.array([[0, 0], [1, 0], [1, 1]], dtype=np.int32))
    assert a != Polygon([[0, 0], [2, 0], [1, 1]])


# --------------------------------------------------------------------------- #
# RLE
# --------------------------------------------------------------------------- #
def coco_encode(mask: np.ndarray) -> dict:
    return mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))


def rle_test_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    masks = [rng.random((int(h), int(w))) < rng.random() for h, w in rng.integers(1, 40, size=(30, 2))]
    masks += [np.zeros((13, 17), bool), np.ones((13, 17), bool)]
    masks += [np.zeros((1, 1), bool), np.ones((1, 1), bool)]
    masks += [rng.random((1, 57)) < 0.5, rng.random((57, 1)) < 0.5]
    masks += [np.ones((1, 40), bool), np.zeros((40, 1), bool), np.ones((40, 1), bool)]
    big = disc((300, 400), 200, 150, 120)  # long runs: multi-character and negative deltas
    big[10:20, 5:390] = True
    masks += [big, ~big]
    return masks


def test_encode_matches_pycocotools() -> None:
    for m in rle_test_masks():
        ours, ref = encode_rle(m), coco_encode(m)
        assert ours["counts"] == ref["counts"].decode()
        assert ours["size"] == list(ref["size"]) == list(m.shape)
        assert isinstance(ours["counts"], str)


def test_decode_round_trip_and_pycocotools_strings() -> None:
    for m in rle_test_masks():
        assert np.array_equal(decode_rle(encode_rle(m)), m)
        ref = coco_encode(m)
        assert np.array_equal(decode_rle(ref), m)  # bytes counts as pycocotools returns them
        out = decode_rle(encode_rle(m))
        assert out.dtype == np.bool_ and out.shape == m.shape


def test_decode_uncompressed_counts() -> None:
    m = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)  # column-major: 0 0 1 1 1 0
    rle = {"size": [2, 3], "counts": [2, 3, 1]}
    assert np.array_equal(decode_rle(rle), m)
    assert rle_area(rle) == 3
    assert rle_bbox(rle) == [1.0, 0.0, 2.0, 2.0]
    assert np.array_equal(decode_rle({"size": [2, 2], "counts": [0, 4]}), np.ones((2, 2), bool))
    coco = mask_api.frPyObjects({"size": [2, 3], "counts": [2, 3, 1]}, 2, 3)
    assert encode_rle(m)["counts"] == coco["counts"].decode()


def test_area_and_bbox_match_pycocotools() -> None:
    for m in rle_test_masks():
        rle, ref = encode_rle(m), coco_encode(m)
        assert rle_area(rle) == int(mask_api.area(ref)) == int(m.sum())
        assert rle_bbox(rle) == mask_api.toBbox(ref).tolist()
        assert mask_bbox(m) == mask_api.toBbox(ref).tolist()
    assert mask_bbox(np.zeros((4, 4), bool)) == [0.0, 0.0, 0.0, 0.0]


def test_empty_shapes() -> None:
    for shape in [(0, 5), (5, 0), (0, 0)]:
        m = np.zeros(shape, bool)
        assert encode_rle(m)["counts"] == coco_encode(m)["counts"].decode()
        assert decode_rle(encode_rle(m)).shape == shape


@pytest.mark.parametrize(
    "rle",
    [
        {"size": [2, 2], "counts": [1, 2]},  # covers 3 of 4 pixels
        {"size": [2, 2], "counts": [1, 2, 3]},  # covers 6
        {"size": [2, 2], "counts": [-1, 5]},  # negative run
        {"size": [-2, 2], "counts": []},  # negative size
        {"size": [2], "counts": [4]},
        {"size": [2, 2], "counts": "4!"},  # invalid character
        {"size": [2, 2], "counts": "4p"},  # beyond 'o'
        {"size": [2, 2], "counts": "P"},  # number not finished
        {"size": [2, 2], "counts": "5"},  # 5 pixels
        {"size": [2, 2], "counts": "é"},
        {"size": [2, 2], "counts": [1.5, 2.5]},
        {"size": [2, 2]},
        [4],
    ],
)
def test_invalid_rle_raises(rle: object) -> None:
    with pytest.raises(ClickmaskError):
        decode_rle(rle)  # type: ignore[arg-type]
    with pytest.raises(ClickmaskError):
        rle_area(rle)  # type: ignore[arg-type]
    with pytest.raises(ClickmaskError):
        rle_bbox(rle)  # type: ignore[arg-type]


def test_invalid_mask_raises() -> None:
    with pytest.raises(ClickmaskError):
        encode_rle(np.zeros((2, 2, 2), bool))
    with pytest.raises(ClickmaskError):
        mask_bbox(np.zeros(4, bool))


def test_polygons_rle_export(two_parts_with_hole: np.ndarray) -> None:
    m = two_parts_with_hole
    rle = encode_rle(polygons_to_mask(mask_to_polygons(m), m.shape))
    assert rle_area(rle) == m.sum()
    assert rle_bbox(rle) == mask_bbox(m)


# --------------------------------------------------------------------------- #
# join_rings
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(5))
def test_join_rings_keeps_parts_and_holes(seed: int) -> None:
    """One ring through every part and hole of a random mask rasterises back to the mask exactly."""
    rng = np.random.default_rng(seed)
    m = rng.random((40, 50)) < 0.35
    rings = [r for p in mask_to_polygons(m) for r in (p.exterior, *p.holes)]
    assert len(rings) > 5
    joined = join_rings(rings)
    assert len(joined) == sum(len(r) for r in rings) + 2 * (len(rings) - 1)
    assert np.array_equal(polygons_to_mask([Polygon(joined)], m.shape), m)
    assert polygon_area(joined) == pytest.approx(m.sum())  # the bridges enclose nothing


def test_join_rings_bridges_nearest_vertices() -> None:
    left = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    right = left + [5, 0]
    far = left + [20, 0]
    joined = join_rings([far, left, right])
    # the bridges: far <-> right (13) and right <-> left (3), never far <-> left (18)
    steps = np.hypot(*np.diff(np.vstack([joined, joined[:1]]), axis=0).T)
    assert sorted(steps[steps > 2.5].tolist()) == [3, 3, 13, 13]
    assert np.array_equal(join_rings([left]), left) and join_rings([]).shape == (0, 2)
