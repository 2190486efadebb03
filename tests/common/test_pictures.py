"""Pictures named by data files stay inside their folder and open under a pixel limit."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from common.pictures import MAX_PICTURE_PIXELS, PictureError, is_url, open_picture, picture_path


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "logs"
    (data / "images").mkdir(parents=True)
    Image.new("RGB", (6, 4), (10, 20, 30)).save(data / "images" / "1.png")
    Image.new("RGB", (5, 5), (200, 0, 0)).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", data / "images" / "link.png")
    return data


def test_paths_inside_the_folder_resolve_to_their_file(folder):
    assert picture_path(folder, "images/1.png", 1) == (folder / "images" / "1.png").resolve()
    assert picture_path(folder, str(folder / "images" / "1.png"), 1) == (folder / "images" / "1.png").resolve()
    assert picture_path(folder, "images/../images/1.png", 1) == (folder / "images" / "1.png").resolve()


@pytest.mark.parametrize("value", ["../outside.png", "../../outside.png", "images/link.png",
                                   "/etc/passwd", "images/../../outside.png"])
def test_paths_that_leave_the_folder_are_refused_naming_item_and_path(folder, value):
    with pytest.raises(PictureError, match=rf"item 42: picture path '{value}' resolves to .*outside the folder"):
        picture_path(folder, value, 42)


@pytest.mark.parametrize("value", ["http://example.com/a.png", "https://x/y.jpg", "file:///etc/passwd",
                                   "s3://bucket/a.png", "data:image/png;base64,AAAA"])
def test_urls_are_refused_and_never_fetched(folder, value):
    assert is_url(value)
    with pytest.raises(PictureError, match=r"item 7: picture .* is a URL"):
        picture_path(folder, value, 7)


def test_a_windows_drive_letter_is_a_path_not_a_url():
    assert not is_url(r"C:\pictures\1.png") and not is_url("images/1.png")


def test_open_picture_decodes_to_rgb(folder):
    pic = open_picture(folder / "images" / "1.png")
    assert pic.mode == "RGB" and pic.size == (6, 4)
    assert np.asarray(pic)[0, 0].tolist() == [10, 20, 30]


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    # a 1-bit 20000 x 20000 picture is ~50 kB on disk and 400 megapixels decoded
    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000 and 20_000 ** 2 > MAX_PICTURE_PIXELS
    with pytest.raises(PictureError, match=rf"bomb.png: picture .*over the limit of {MAX_PICTURE_PIXELS} pixels"):
        open_picture(tmp_path / "bomb.png")
    with pytest.raises(PictureError, match="over the limit of 100 pixels"):
        open_picture(tmp_path / "bomb.png", max_pixels=100)


@pytest.mark.parametrize("content, message", [(b"", "not a picture format"), (b"not a png at all", "not a picture format"),
                                              (None, "file not found")])
def test_missing_and_broken_pictures_name_the_path(tmp_path, content, message):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PictureError, match=rf"x.png: {message}"):
        open_picture(path)


def test_a_truncated_picture_names_the_path(folder, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(PictureError, match=r"t.png: corrupt or truncated picture"):
        open_picture(tmp_path / "t.png")
