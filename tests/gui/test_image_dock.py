"""The image dock's thumbnail strip mirrors the session's images and drives the current one."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cnnexplorer.core.images import load_image
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.image_dock import ImageDock


@pytest.fixture
def images(tmp_path):
    paths = []
    for k, (size, mode) in enumerate([((60, 40), "RGB"), ((30, 90), "RGB"), ((50, 50), "L")]):
        path = tmp_path / f"img{k}.png"
        Image.new(mode, size, 40 * k + 20).save(path)
        paths.append(path)
    return [load_image(p) for p in paths]


@pytest.fixture
def dock(qtbot):
    widget = ImageDock(Session())
    qtbot.addWidget(widget)
    widget.resize(320, 480)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_hint_shows_only_while_empty(dock, images):
    assert dock.hint.isVisible() and not dock.strip.isVisible()
    assert "Drop images here" in dock.hint.text()
    dock.session.add_images(images[:1])
    assert dock.strip.isVisible() and not dock.hint.isVisible()
    dock.session.remove_image(images[0])
    assert dock.hint.isVisible() and not dock.strip.isVisible()


def test_strip_has_one_item_per_image_and_follows_the_session(dock, images):
    session = dock.session
    session.add_images(images)
    strip = dock.strip
    assert [strip.item(k).text() for k in range(strip.count())] == ["img0.png", "img1.png", "img2.png"]
    assert strip.currentRow() == 2 and session.image is images[2]
    session.set_image(images[0])
    assert strip.currentRow() == 0
    tooltip = strip.item(2).toolTip()
    assert str(images[2].path) in tooltip and "50 × 50 px" in tooltip and "converted from grayscale" in tooltip
    assert not strip.item(0).icon().isNull()


def test_clicking_a_thumbnail_sets_the_current_image_once(qtbot, dock, images):
    session = dock.session
    session.add_images(images)
    seen = []
    session.image_changed.connect(seen.append)
    strip = dock.strip
    centre = strip.visualItemRect(strip.item(1)).center()
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert session.image is images[1] and seen == [images[1]]
    assert strip.currentRow() == 1


def test_delete_key_removes_the_current_image(qtbot, dock, images):
    session = dock.session
    session.add_images(images)
    session.set_image(images[1])
    dock.strip.setFocus()
    qtbot.keyClick(dock.strip, Qt.Key.Key_Delete)
    assert session.images == [images[0], images[2]]
    assert dock.strip.count() == 2
    assert dock.strip.currentRow() == 1 and session.image is images[2]


@pytest.mark.parametrize("size, width", [((28, 28), 84), ((32, 20), 96), ((20, 40), 40), ((96, 96), 96), ((300, 200), 96),
                                         ((100, 400), 24)])
def test_a_thumbnail_fills_its_icon_whatever_the_image_size(qapp, size, width):
    """Small images (digits, CIFAR) are enlarged by a whole factor, large ones shrunk to fit, centred: ``width``
    is how wide the image is drawn in the icon."""
    from cnnexplorer.gui.widgets.image_dock import ICON, thumbnail

    picture = thumbnail(Image.new("RGB", size, (200, 30, 30))).pixmap(ICON, ICON).toImage()
    drawn = [x for x in range(ICON) if picture.pixelColor(x, ICON // 2).alpha() > 0]
    assert max(drawn) - min(drawn) + 1 == width
    assert abs((min(drawn) + max(drawn)) / 2 - (ICON - 1) / 2) <= 1
