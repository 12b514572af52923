"""The class-folder reader: alias mapping, nested Kaggle layouts, any image to gray."""

import numpy as np
import pytest
from PIL import Image

from tfstylegan.data import folders
from tfstylegan.utils.errors import UserError


@pytest.mark.parametrize("name,canonical", [
    ("glioma", "glioma"), ("glioma_tumor", "glioma"), ("Glioma_Tumor", "glioma"),
    ("meningioma", "meningioma"), ("meningioma_tumor", "meningioma"),
    ("pituitary", "pituitary"), ("pituitary_tumor", "pituitary"),
    ("notumor", "notumor"), ("no_tumor", "notumor"), ("no-tumor", "notumor"),
    ("Training", None), ("cats", None)])
def test_canonical_class(name, canonical):
    assert folders.canonical_class(name) == canonical


def test_scan_nested_kaggle_layout(tmp_path):
    img = Image.fromarray(np.zeros((80, 90, 3), np.uint8))
    for rel in ["Training/glioma_tumor/a.jpg", "Testing/glioma/b.png", "Training/no_tumor/c.jpg",
                "Training/meningioma_tumor/sub/d.png", "extra/e.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p)
    (tmp_path / "Training/pituitary").mkdir()
    (tmp_path / "Training/glioma_tumor/notes.txt").write_text("not an image")
    entries, class_dirs = folders.scan_folders(tmp_path)
    got = {e.rel: e.class_name for e in entries}
    assert got == {"Testing/glioma/b.png": "glioma", "Training/glioma_tumor/a.jpg": "glioma",
                   "Training/no_tumor/c.jpg": "notumor",
                   "Training/meningioma_tumor/sub/d.png": "meningioma", "extra/e.png": None}
    assert class_dirs["pituitary"] == ["Training/pituitary"]  # an empty class folder is reported
    assert sorted(class_dirs["glioma"]) == ["Testing/glioma", "Training/glioma_tumor"]
    assert folders.has_class_folders(tmp_path)
    assert not folders.has_class_folders(tmp_path / "extra")


def test_read_image_modes(tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((40, 50), 77, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.full((40, 50), 40000, np.uint16)).save(tmp_path / "deep.png")
    x = folders.read_image(tmp_path / "rgb.png")
    assert x.shape == (40, 50) and x.dtype == np.float32
    np.testing.assert_allclose(x, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-5)
    np.testing.assert_array_equal(folders.read_image(tmp_path / "gray.png"), 77)
    np.testing.assert_array_equal(folders.read_image(tmp_path / "deep.png"), 40000)


def test_unreadable_image_named(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with pytest.raises(UserError, match=r"broken\.jpg: cannot read the image"):
        folders.read_image(tmp_path / "broken.jpg")


def test_source_not_a_folder(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        folders.scan_folders(tmp_path / "missing")
