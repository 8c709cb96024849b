"""'Why similar' heat maps: where they peak, that they add up to the similarity, and that they use the run's model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from skinsim.search.explain import prepare, similarity_maps
from skinsim.model.embedder import Embedder
from skinsim.search.search_index import SearchIndex

SIZE = (150, 200)  # the default recipe's height x width
SKIN, LESION = (214, 170, 150), (90, 50, 40)


def lesion_image(box: tuple[int, int, int, int]) -> Image.Image:
    """Plain skin with one dark oval lesion inside `box` (left, top, right, bottom)."""
    img = Image.new("RGB", (SIZE[1], SIZE[0]), SKIN)
    ImageDraw.Draw(img).ellipse(box, fill=LESION)
    return img


def oval_mask(box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    cx, cy, rx, ry = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


@pytest.fixture(scope="module")
def lite0() -> Embedder:
    """The default backbone with its ImageNet weights and a random 16-d head."""
    torch.manual_seed(0)
    return Embedder("efficientnet_lite0", em=16, pretrained="imagenet").eval()


@pytest.mark.parametrize("box", [(120, 80, 185, 140), (10, 10, 80, 70)])
def test_an_image_compared_with_itself_lights_up_where_the_lesion_is(lite0: Embedder, box: tuple) -> None:
    x = prepare(lesion_image(box), SIZE, lite0.mean, lite0.std)
    maps = similarity_maps(lite0, x, x)
    inside = oval_mask(box)
    assert maps.query.shape == SIZE and maps.neighbour.shape == SIZE
    assert maps.query.max() == pytest.approx(1.0) and maps.query.min() >= 0
    assert maps.cosine == pytest.approx(1.0, abs=1e-5)
    # the map has one cell per 32x32 pixels, so 'on the lesion' means within one cell of its edge; the lesion is
    # far brighter than the skin beyond that
    grown = np.zeros_like(inside)
    ys, xs = np.nonzero(inside)
    grown[max(0, ys.min() - 32): ys.max() + 32, max(0, xs.min() - 32): xs.max() + 32] = True
    assert grown[np.unravel_index(maps.query.argmax(), SIZE)]
    assert maps.query[inside].mean() > 2 * maps.query[~grown].mean()
    np.testing.assert_allclose(maps.query, maps.neighbour, atol=1e-6)


def test_the_map_is_each_locations_exact_share_of_the_similarity(lite0: Embedder) -> None:
    a = prepare(lesion_image((120, 80, 185, 140)), SIZE, lite0.mean, lite0.std)
    b = prepare(lesion_image((20, 30, 90, 100)), SIZE, lite0.mean, lite0.std)
    maps = similarity_maps(lite0, a, b)
    assert maps.query_share_sum == pytest.approx(maps.query_target, rel=1e-4, abs=1e-5)
    with torch.no_grad():
        expected = float((lite0(a) * lite0(b)).sum())
    assert maps.cosine == pytest.approx(expected, abs=1e-5)
    # each map follows its own image's lesion
    assert maps.query[oval_mask((120, 80, 185, 140))].mean() > maps.query[oval_mask((20, 30, 90, 100))].mean()
    assert maps.neighbour[oval_mask((20, 30, 90, 100))].mean() > maps.neighbour[oval_mask((120, 80, 185, 140))].mean()


def test_explaining_changes_neither_the_model_nor_its_gradients(lite0: Embedder) -> None:
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    x = prepare(lesion_image((120, 80, 185, 140)), SIZE, lite0.mean, lite0.std)
    similarity_maps(lite0, x, x)
    assert all(torch.equal(before[k], v) for k, v in lite0.state_dict().items())
    assert all(p.grad is None for p in lite0.parameters())
    assert not lite0.training


def test_a_run_explains_two_image_files_with_its_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    index = SearchIndex.from_run(tiny_run)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    lesion_image((120, 80, 185, 140)).save(a)
    lesion_image((20, 30, 90, 100)).save(b)
    maps = index.explain(a, Image.open(b))
    h, w = (int(v) for v in index.config.image_size.split("x"))
    assert maps.query.shape == (h, w) and maps.neighbour.shape == (h, w)
    assert np.isfinite(maps.query).all() and 0 <= maps.query.min() and maps.query.max() <= 1
    model = index.model
    with torch.no_grad():
        ua, ub = (model(prepare(Image.open(p), (h, w), model.mean, model.std)) for p in (a, b))
    assert maps.cosine == pytest.approx(float((ua * ub).sum()), abs=1e-5)
