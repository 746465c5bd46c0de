"""The index's thumbnails: made by the probe set's readers from the 8-bit image, equal to a query's made from
its pixels, of any input size and mode; a file gone since the set was opened gives a black one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.dataset.index import index_job
from cnnexplorer.core.dataset.index_types import THUMBNAIL
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.dataset.thumbnails import pixels_thumbnail, thumbnail
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import Preprocessing
from tests.core.test_probe_sets import tiny_handle, write_image


@pytest.mark.parametrize("side", [12, 28, 32, 64, 100, 224])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_thumbnail_is_rgb_at_its_side_for_any_input(side, mode):
    colour = (200, 40, 90) if mode == "RGB" else 77
    small = thumbnail(Image.new(mode, (side, side), colour))
    assert small.shape == (THUMBNAIL, THUMBNAIL, 3) and small.dtype == np.uint8
    expected = colour if mode == "RGB" else (colour,) * 3
    assert (small == np.array(expected, np.uint8)).all(), "a flat image stays its colour at every size"


def test_a_thumbnail_averages_the_pixels_it_shrinks():
    """A one-pixel checkerboard is flat grey once shrunk (picking every other pixel would give black or white)."""
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    small = thumbnail(Image.fromarray(board))
    assert small.min() >= 127 and small.max() <= 128


def test_the_readers_thumbnails_are_the_queries_and_the_index_keeps_them(tmp_path):
    root = tmp_path / "set"
    for i, (size, mode) in enumerate([(20, "RGB"), (40, "L"), (33, "RGBA"), (12, "RGB")]):
        write_image(root / f"{i}.png", seed=i, size=size, mode=mode)
    probe = open_probe_set(str(root))
    handle = tiny_handle()
    _, pixels, _, thumbs = next(probe.batches_with_thumbnails(handle.preprocessing, 8))
    for image in range(len(probe)):
        np.testing.assert_array_equal(thumbs[image], pixels_thumbnail(pixels[image]))
        np.testing.assert_array_equal(thumbs[image], thumbnail(handle.preprocessing.fit(probe.image(image))))
    index = drive(index_job(handle, probe, batch_size=3, cache_dir=tmp_path / "cache"))
    np.testing.assert_array_equal(index.thumbnails, thumbs)


def test_a_file_gone_since_the_set_was_opened_stands_as_black(tmp_path):
    root = tmp_path / "set"
    for i in range(3):
        write_image(root / f"{i}.png", seed=i)
    probe = open_probe_set(str(root))
    (root / "1.png").unlink()
    pre = Preprocessing(3, (16, 16), (0.0,) * 3, (1.0,) * 3)
    _, pixels, _, thumbs = next(probe.batches_with_thumbnails(pre, 3))
    assert pixels[1].abs().sum() == 0 and thumbs[1].sum() == 0
    assert pixels[0].abs().sum() > 0 and thumbs[0].sum() > 0
    assert list(probe.skipped) == [str(root / "1.png")] and "a black image stands in" in probe.skipped[str(root / "1.png")]
    again = next(probe.batches(pre, 3))[1]
    assert again.equal(pixels)
