"""An image of a generated or packaged data set opens as a file does, by its reference ``SPEC#N``: the same
pixels as the set's image, a stable SHA-256, names fit for titles and file names, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.dataset.members import member_image, parse_member
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import load_image


@pytest.mark.parametrize("text, parsed", [
    ("builtin:shapes#12", ("builtin:shapes", 12)),
    ("builtin:digits#0", ("builtin:digits", 0)),
    ("cifar10:/data/cifar#3", ("cifar10:/data/cifar", 3)),
    ("fashion-mnist:~/d#9999", ("fashion-mnist:~/d", 9999)),
    ("mnist:/a#b/c#41", ("mnist:/a#b/c", 41)),
    (" builtin:shapes#5 ", ("builtin:shapes", 5)),
    ("builtin:shapes#-1", None),
    ("builtin:shapes#x", None),
    ("builtin:shapes", None),
    ("folder:/data#3", None),  # a folder's images are files, opened by their paths
    ("/data/photo#3", None),
    ("photo#3.png", None),
])
def test_a_reference_names_a_set_and_a_number(text, parsed):
    assert parse_member(text) == parsed


def test_an_image_of_a_set_opens_with_the_sets_pixels_and_names_fit_for_files():
    probe = open_probe_set("builtin:digits")
    image = load_image("builtin:digits#7")
    original = probe.image(7)
    assert original.mode == "L"
    np.testing.assert_array_equal(np.asarray(image.image), np.repeat(np.asarray(original)[..., None], 3, axis=2))
    assert image.name == image.source == image.reference == "builtin:digits#7"
    assert image.note == "converted from grayscale"
    assert image.stem == "builtin-digits-7" and image.beside("-x.png").name == "builtin-digits-7-x.png"
    again, other = load_image("builtin:digits#7"), load_image("builtin:digits#8")
    assert again.sha256 == image.sha256 != other.sha256
    assert member_image(probe, 7).sha256 == image.sha256


def test_a_folders_image_is_its_file(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((4, 4, 3), 100 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    image = member_image(open_probe_set(str(tmp_path)), 1)
    assert image.reference == "" and image.path == tmp_path / "1.png" and image.source == str(tmp_path / "1.png")
    assert image.sha256 == load_image(tmp_path / "1.png").sha256
    with pytest.raises(UserError, match="holds 2 images, numbered 0 to 1; there is no image 2"):
        member_image(open_probe_set(str(tmp_path)), 2)


def test_a_number_past_the_set_and_an_unknown_set_are_refused():
    with pytest.raises(UserError, match="builtin:digits holds 355 images, numbered 0 to 354; there is no image 355"):
        load_image("builtin:digits#355")
    with pytest.raises(UserError, match="unknown built-in dataset 'nothing'"):
        load_image("builtin:nothing#1")
    with pytest.raises(UserError, match="not found"):
        load_image("builtin:digits#x")  # no reference: a file of that name, which is not there


def test_a_file_whose_name_reads_as_a_reference_opens_as_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pixels = np.full((5, 6, 3), 200, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "picture.png")
    (tmp_path / "picture.png").rename(tmp_path / "builtin:digits#7")
    image = load_image("builtin:digits#7")
    assert image.reference == "" and image.path.name == "builtin:digits#7"
    np.testing.assert_array_equal(np.asarray(image.image), pixels)
