"""data/folder.py, data/transforms.py and io.py on tiny photos written to tmp_path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _helpers import colour_photo, grey_photo, make_photo_tree, save, tinted_grey_photo
from PIL import Image

from polychrome.color.lab import rgb_to_lab
from polychrome.data import ColorPhotoFolder, is_grayscale
from polychrome.io import ImageError, find_images, load_rgb, open_image, pil_to_rgb_array

ALL_EXTS = ("jpg", "png", "webp", "bmp", "tif")


def _max_abs_ab(img: Image.Image) -> float:
    rgb = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return float(rgb_to_lab(rgb)[1:].abs().max())


# ----------------------------------------------------------------------------- io


def test_find_images_nested_tree_all_formats(tmp_path):
    written = make_photo_tree(tmp_path, 10, exts=ALL_EXTS)
    (tmp_path / "set0" / "notes.txt").write_text("not a photo")
    (tmp_path / "set1" / ".hidden.png").write_bytes(b"")
    save(colour_photo(99), tmp_path / "set1" / "UPPER.JPEG")
    found = find_images(tmp_path)
    assert found == sorted(written + [tmp_path / "set1" / "UPPER.JPEG"])
    assert {p.suffix for p in found} == {".jpg", ".png", ".webp", ".bmp", ".tif", ".JPEG"}


@pytest.mark.parametrize("ext", ALL_EXTS)
def test_load_rgb_each_format(tmp_path, ext):
    path = save(colour_photo(3, 40, 30), tmp_path / f"a.{ext}")
    rgb = load_rgb(path)
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.float32
    assert 0 <= rgb.min() and rgb.max() <= 1
    ref = np.asarray(colour_photo(3, 40, 30), dtype=np.float32) / 255
    # Lossless formats are exact; JPEG at quality 95 is close.
    np.testing.assert_allclose(rgb, ref, atol=0.2 if ext == "jpg" else 1e-6)


def test_exif_orientation_is_applied(tmp_path):
    img = colour_photo(0, w=60, h=40)
    # Mark the left column red so the rotation direction is checked, not only the size.
    arr = np.asarray(img).copy()
    arr[:, :4] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; display rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    with Image.open(path) as raw:
        assert raw.size == (60, 40)  # stored landscape
    assert open_image(path).size == (40, 60)  # shown portrait
    rgb = load_rgb(path)
    assert rgb.shape == (60, 40, 3)
    # Rotating 90 degrees clockwise moves the left column to the top row.
    assert rgb[:3, :, 0].mean() > 0.9 and rgb[:3, :, 1:].mean() < 0.15


def test_modes_load_as_rgb(tmp_path):
    base = colour_photo(1, 32, 24)
    rgba = base.copy()
    rgba.putalpha(128)
    cases = {
        "rgba.png": rgba,
        "palette.png": base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "palette.bmp": base.convert("P"),
        "cmyk.jpg": base.convert("CMYK"),
        "cmyk.tif": base.convert("CMYK"),
        "la.png": base.convert("LA"),
        "l.jpg": base.convert("L"),
    }
    for name, img in cases.items():
        save(img, tmp_path / name)
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (24, 32, 3), name
        assert rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1, name
    # Colour survives the conversions (CMYK through PIL's naive conversion is still colourful).
    for name in ("rgba.png", "palette.png", "cmyk.tif"):
        rgb = load_rgb(tmp_path / name)
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 0.1, name
    rgb, alpha = pil_to_rgb_array(Image.open(tmp_path / "rgba.png"))
    assert alpha is not None and np.allclose(alpha, 128 / 255)


def test_sixteen_bit_grey_keeps_its_scale(tmp_path):
    ramp = np.linspace(0, 60000, 32 * 24).reshape(24, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    Image.fromarray(ramp).save(tmp_path / "g16.tif")
    for name in ("g16.png", "g16.tif"):
        with Image.open(tmp_path / name) as im:
            assert im.mode == "I;16"
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (24, 32, 3)
        np.testing.assert_allclose(rgb[..., 0], ramp / 65535.0, atol=1e-6)
        assert np.array_equal(rgb[..., 0], rgb[..., 2])
    # A dark 16-bit scan (every value <= 255) is still on the 16-bit scale, not mistaken for 8-bit.
    dark = (np.arange(32 * 24).reshape(24, 32) % 200).astype(np.uint16)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    np.testing.assert_allclose(load_rgb(tmp_path / "dark16.png")[..., 1], dark / 65535.0, atol=1e-7)


def test_io_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="missing.png: no such file"):
        load_rgb(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"this is not a png")
    with pytest.raises(ImageError, match="junk.png"):
        load_rgb(tmp_path / "junk.png")
    full = tmp_path / "full.jpg"
    save(colour_photo(0, 64, 64), full)
    (tmp_path / "cut.jpg").write_bytes(full.read_bytes()[:300])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_rgb(tmp_path / "cut.jpg")
    with pytest.raises(ImageError, match="no such file or folder"):
        find_images(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- greyscale test


def test_is_grayscale_verdicts():
    assert not is_grayscale(colour_photo(0))
    assert is_grayscale(grey_photo(0))
    tinted = tinted_grey_photo(0)
    arr = np.asarray(tinted)
    assert not np.array_equal(arr[..., 0], arr[..., 2])  # not literally R=G=B ...
    assert 1.0 < _max_abs_ab(tinted) < 5.0  # ... but its chroma stays under Zhang et al.'s 5
    assert is_grayscale(tinted)
    assert is_grayscale(grey_photo(0).convert("L"))


# ----------------------------------------------------------------------------- dataset


@pytest.fixture
def mixed_tree(tmp_path):
    """A nested tree: 10 colour photos over all formats, odd modes, 4 grey ones, 2 broken files."""
    root = tmp_path / "photos"
    colour = make_photo_tree(root, 10, exts=ALL_EXTS)
    odd = root / "odd"
    rgba = colour_photo(50)
    rgba.putalpha(200)
    colour += [
        save(rgba, odd / "rgba.png"),
        save(colour_photo(51).convert("P", palette=Image.Palette.ADAPTIVE, colors=32), odd / "pal.png"),
        save(colour_photo(52).convert("CMYK"), odd / "cmyk.jpg"),
    ]
    grey = [
        save(grey_photo(60), root / "grey" / "rgb_grey.png"),
        save(grey_photo(61).convert("L"), root / "grey" / "l.jpg"),
        save(tinted_grey_photo(62), root / "grey" / "tinted.png"),
    ]
    Image.fromarray((np.arange(40 * 36).reshape(36, 40) * 40).astype(np.uint16)).save(root / "grey" / "g16.png")
    grey.append(root / "grey" / "g16.png")
    (root / "broken").mkdir()
    (root / "broken" / "garbage.jpg").write_bytes(b"\x00\x01 definitely not a jpeg")
    full = save(colour_photo(70, 64, 64), tmp_path / "full.jpg")
    (root / "broken" / "truncated.jpg").write_bytes(full.read_bytes()[:400])
    return root, colour, grey


def test_dataset_skips_grey_and_unreadable(mixed_tree, caplog):
    root, colour, grey = mixed_tree
    with caplog.at_level(logging.WARNING, logger="polychrome.data.folder"):
        ds = ColorPhotoFolder(root, size=32, train=False)
    assert sorted(ds.paths) == sorted(colour)
    assert len(ds) == len(colour) == 13
    assert ds.skipped_gray == len(grey) == 4
    assert len(ds.skipped_unreadable) == 2
    assert any("garbage.jpg" in m for m in ds.skipped_unreadable)
    assert any("truncated.jpg" in m for m in ds.skipped_unreadable)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("garbage.jpg" in m and "unreadable" in m for m in warnings)
    assert any("truncated.jpg" in m for m in warnings)
    assert any("4 greyscale" in m for m in warnings)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0 <= x.min() and x.max() <= 1


def test_dataset_without_grey_check_keeps_everything_readable(tmp_path):
    make_photo_tree(tmp_path, 3)
    save(grey_photo(0), tmp_path / "g.png")
    ds = ColorPhotoFolder(tmp_path, size=16, train=False, skip_gray=False)
    assert len(ds) == 4 and ds.skipped_gray == 0


def test_dataset_from_txt_list(tmp_path):
    paths = make_photo_tree(tmp_path / "pics", 5, exts=("png", "jpg"))
    save(grey_photo(1), tmp_path / "pics" / "grey.png")
    lines = ["# training list", "", *[str(p.relative_to(tmp_path)) for p in paths[:3]], "pics/grey.png", str(paths[3])]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    assert find_images(tmp_path / "list.txt")[:3] == [tmp_path / p.relative_to(tmp_path) for p in paths[:3]]
    ds = ColorPhotoFolder(tmp_path / "list.txt", size=24, train=True)
    assert len(ds) == 4 and ds.skipped_gray == 1
    assert ds[0].shape == (3, 24, 24)


def test_dataset_single_file_and_limit(tmp_path):
    paths = make_photo_tree(tmp_path, 12)
    assert len(ColorPhotoFolder(paths[0], size=16, train=False)) == 1
    a = ColorPhotoFolder(tmp_path, size=16, train=False, limit=5, seed=3)
    b = ColorPhotoFolder(tmp_path, size=16, train=False, limit=5, seed=3)
    assert len(a) == 5 and a.paths == b.paths


def test_train_items_and_augmentation_determinism(tmp_path):
    make_photo_tree(tmp_path, 4, size=(64, 48), exts=("png", "webp"))
    ds = ColorPhotoFolder(tmp_path, size=32, train=True, seed=7)
    twin = ColorPhotoFolder(tmp_path, size=32, train=True, seed=7)
    other_seed = ColorPhotoFolder(tmp_path, size=32, train=True, seed=8)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        # The same (seed, epoch, index) gives the same crop, in any order and on any instance.
        assert torch.equal(x, twin[i])
        assert torch.equal(x, ds[i])
    torch.random.manual_seed(123)  # global RNG state must not matter
    assert torch.equal(ds[0], twin[0])
    epoch0 = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = [ds[i] for i in range(len(ds))]
    assert all(not torch.equal(a, b) for a, b in zip(epoch0, epoch1))
    twin.set_epoch(1)
    assert all(torch.equal(a, twin[i]) for i, a in enumerate(epoch1))
    assert any(not torch.equal(a, other_seed[i]) for i, a in enumerate(epoch0))


def test_val_items_deterministic(tmp_path):
    make_photo_tree(tmp_path, 3, size=(50, 34))
    ds = ColorPhotoFolder(tmp_path, size=24, train=False)
    first = [ds[i] for i in range(len(ds))]
    ds.set_epoch(5)
    for i, x in enumerate(first):
        assert x.shape == (3, 24, 24)
        assert torch.equal(x, ds[i])
    assert torch.equal(first[0], ColorPhotoFolder(tmp_path, size=24, train=False)[0])
