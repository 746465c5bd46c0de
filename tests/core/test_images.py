"""load_image: every bad file is a clear UserError, every odd-but-valid file becomes RGB."""

from __future__ import annotations

import hashlib
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import classify_path, load_image


def rgb_of(loaded) -> np.ndarray:
    assert loaded.image.mode == "RGB"
    return np.asarray(loaded.image).astype(int)


def test_rgb_png_loads_unchanged_with_file_hash(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    loaded = load_image(path)
    assert np.array_equal(np.asarray(loaded.image), pixels)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.note == "" and loaded.name == "a.png"


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found: .*nope.png"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        load_image(tmp_path)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(UserError, match=r"notes\.png is not an image file.*open a PNG"):
        load_image(path)


def test_truncated_png_is_an_error_not_half_grey(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.png is truncated or corrupt"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_jpeg(tmp_path):
    path = tmp_path / "bad.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError, match=r"bad\.jpg is truncated or corrupt"):
        load_image(path)


def test_grayscale_becomes_equal_rgb_channels(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L").save(path)
    loaded = load_image(path)
    rgb = rgb_of(loaded)
    assert np.array_equal(rgb[..., 0], np.arange(256).reshape(16, 16))
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    assert "grayscale" in loaded.note


def test_rgba_composited_over_white(tmp_path):
    path = tmp_path / "t.png"
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(path)
    loaded = load_image(path)
    rgb = rgb_of(loaded)
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in rgb[0, 2])
    assert "over white" in loaded.note


def test_la_composited_over_white(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), mode="LA").save(path)
    rgb = rgb_of(load_image(path))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [0, 0, 0]


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "p.png"
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    image.putdata([0, 1])
    image.save(path, transparency=1)
    loaded = load_image(path)
    rgb = rgb_of(loaded)
    assert rgb[0, 0].tolist() == [0, 0, 255]
    assert rgb[0, 1].tolist() == [255, 255, 255]


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "p.gif"
    image = Image.new("P", (2, 1))
    image.putpalette([200, 10, 20, 5, 6, 7] + [0] * 762)
    image.putdata([0, 1])
    image.save(path)
    loaded = load_image(path)
    assert rgb_of(loaded)[0].tolist() == [[200, 10, 20], [5, 6, 7]]
    assert "palette" in loaded.note


def test_16bit_ramp_becomes_8bit_ramp(tmp_path):
    path = tmp_path / "r16.png"
    Image.fromarray((np.arange(256) * 257).astype(np.uint16).reshape(1, 256)).save(path)
    loaded = load_image(path)
    assert np.array_equal(rgb_of(loaded)[0, :, 1], np.arange(256))
    assert "16-bit" in loaded.note


def test_32bit_int_image_holding_16bit_values(tmp_path):
    path = tmp_path / "r32.tif"
    image = Image.fromarray((np.arange(256) * 257).astype(np.int32).reshape(1, 256))
    assert image.mode == "I"
    image.save(path)
    assert np.array_equal(rgb_of(load_image(path))[0, :, 0], np.arange(256))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)
    loaded = load_image(path)
    red, green, blue = rgb_of(loaded)[8, 8]
    assert red > 240 and green < 15 and blue < 15
    assert "CMYK" in loaded.note


@pytest.mark.parametrize("orientation, top, bottom", [(6, "red", "blue"), (8, "blue", "red")])
def test_exif_rotated_jpeg(tmp_path, orientation, top, bottom):
    """Stored 40 wide × 20 high, red left half, blue right half; displayed rotated by 90°."""
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = colours["red"]
    stored[:, 20:] = colours["blue"]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rot.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.image.size == (20, 40)
    rgb = rgb_of(loaded)
    assert np.abs(rgb[5, 10] - colours[top]).max() < 20
    assert np.abs(rgb[35, 10] - colours[bottom]).max() < 20
    assert f"orientation {orientation}" in loaded.note


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width×height`` but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(20000, 10000), (11000, 10000)])
def test_huge_image_refused_from_header_without_decoding(tmp_path, width, height):
    """200 MP trips PIL's own bomb error, 110 MP only its warning: both give our message."""
    path = tmp_path / "bomb.png"
    png_header_only(path, width, height)
    assert path.stat().st_size < 100
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match=r"bomb\.png is .*over the 100-megapixel limit; downscale"):
            load_image(path)
    assert time.perf_counter() - start < 0.5


def open_descriptors_to(path: Path) -> list[str]:
    fd_dir = Path("/proc/self/fd")
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(fd_dir / fd))
        except OSError:
            continue
    return [t for t in targets if t == str(path.resolve())]


def test_file_is_closed_after_loading_and_after_errors(tmp_path):
    good = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:30])
    load_image(good)
    with pytest.raises(UserError):
        load_image(bad)
    assert open_descriptors_to(good) == [] and open_descriptors_to(bad) == []


def test_classify_path():
    assert classify_path("x/cat.JPG") == "image"
    assert classify_path("net.safetensors") == "model"
    assert classify_path("pytorch_model.bin") == "model"
    assert classify_path("readme.txt") == "unknown"
    assert classify_path("builtin:shapes#12") == "image"  # an image of a data set
    assert classify_path("builtin:shapes") == "unknown" and classify_path("notes#3") == "unknown"


def test_a_sample_is_known_by_its_name_wherever_the_app_is_installed(tmp_path, monkeypatch):
    from cnnexplorer.resource_files import resource_path

    monkeypatch.chdir(tmp_path)
    by_name, by_path = load_image("sample:circle"), load_image(resource_path("samples", "circle.png"))
    assert by_name.reference == by_path.reference == by_name.source == by_name.name == "sample:circle"
    assert by_name.sha256 == by_path.sha256 and by_name.path == resource_path("samples", "circle.png")
    assert by_name.beside("-chart.png") == tmp_path / "sample-circle-chart.png"  # not inside the installed package
    copy = tmp_path / "circle.png"
    copy.write_bytes(resource_path("samples", "circle.png").read_bytes())
    own = load_image(copy)  # the user's own file, though its pixels are a sample's
    assert own.reference == "" and own.source == str(copy) and own.beside("-chart.png") == tmp_path / "circle-chart.png"
