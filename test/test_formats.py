"""PFM and KITTI disparity PNG round trips, byte-level layout, and clear errors."""

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.formats import (
    DataFormatError,
    read_depth,
    read_image,
    read_kitti_disparity,
    read_mask,
    read_pfm,
    write_kitti_disparity,
    write_pfm,
)


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_pfm_round_trip_keeps_values_and_inf(tmp_path, little, channels):
    rng = np.random.default_rng(0)
    shape = (5, 7) if channels == 1 else (5, 7, 3)
    data = rng.normal(size=shape).astype(np.float32)
    data[0, 0] = np.inf
    data[4, 6] = -np.inf
    path = write_pfm(tmp_path / "a.pfm", data, little_endian=little)
    back = read_pfm(path)
    assert back.shape == shape and back.dtype == np.float32
    np.testing.assert_array_equal(back, data)


def test_pfm_layout_is_bottom_row_first_and_endian_by_scale_sign(tmp_path):
    data = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)  # top row 1 2
    raw = write_pfm(tmp_path / "le.pfm", data).read_bytes()
    assert raw.startswith(b"Pf\n2 2\n") and b"\n-1.0\n" in raw
    body = np.frombuffer(raw[-16:], "<f4")
    np.testing.assert_array_equal(body, [3, 4, 1, 2])  # stored bottom row first
    be = tmp_path / "be.pfm"
    be.write_bytes(b"Pf\n2 2\n1.0\n" + np.array([3, 4, 1, 2], ">f4").tobytes())
    np.testing.assert_array_equal(read_pfm(be), data)
    # A file written by hand the way other tools do (colour, little endian, scale -0.5).
    col = tmp_path / "c.pfm"
    vals = np.arange(12, dtype="<f4")
    col.write_bytes(b"PF\n2 2\n-0.5\n" + vals.tobytes())
    img = read_pfm(col)
    assert img.shape == (2, 2, 3)
    np.testing.assert_array_equal(img[1, 0], [0, 1, 2])  # first stored pixel = bottom-left


def test_pfm_errors_name_the_file(tmp_path):
    trunc = tmp_path / "trunc.pfm"
    trunc.write_bytes(b"Pf\n4 4\n-1.0\n" + np.zeros(10, "<f4").tobytes())
    with pytest.raises(DataFormatError, match="trunc.pfm.*truncated"):
        read_pfm(trunc)
    bad = tmp_path / "bad.pfm"
    bad.write_bytes(b"P6\n4 4\n255\n" + bytes(48))
    with pytest.raises(DataFormatError, match="bad.pfm.*not a PFM"):
        read_pfm(bad)
    header = tmp_path / "header.pfm"
    header.write_bytes(b"Pf\nfour 4\n-1\n")
    with pytest.raises(DataFormatError, match="header.pfm"):
        read_pfm(header)
    with pytest.raises(DataFormatError, match="missing.pfm.*not found"):
        read_pfm(tmp_path / "missing.pfm")
    with pytest.raises(DataFormatError, match="x.pfm"):
        write_pfm(tmp_path / "x.pfm", np.zeros((2, 2, 2)))


def test_kitti_png_round_trip_and_invalid_pixels(tmp_path):
    disp = np.array([[0.0, 1.5, np.nan], [255.996, -3.0, 100.25]], np.float32)
    path = write_kitti_disparity(tmp_path / "d.png", disp)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[0, 384, 0], [65535, 0, 25664]])
    back = read_kitti_disparity(path)
    assert np.isnan(back[0, 0]) and np.isnan(back[0, 2]) and np.isnan(back[1, 1])
    np.testing.assert_allclose(back[0, 1], 1.5)
    np.testing.assert_allclose(back[1, 2], 100.25)


def test_kitti_png_errors(tmp_path):
    eight = tmp_path / "eight.png"
    cv2.imwrite(str(eight), np.zeros((3, 3), np.uint8))
    with pytest.raises(DataFormatError, match="eight.png.*16-bit"):
        read_kitti_disparity(eight)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFormatError, match="junk.png.*corrupt"):
        read_kitti_disparity(junk)


def test_images_masks_and_depth(tmp_path):
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((4, 5), 7, np.uint8))
    img = read_image(grey)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8 and (img == 7).all()
    bgr = tmp_path / "c.png"
    cv2.imwrite(str(bgr), np.dstack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30)]))
    assert read_image(bgr)[0, 0].tolist() == [30, 20, 10]  # RGB order
    sixteen = tmp_path / "s.png"
    cv2.imwrite(str(sixteen), np.full((2, 2, 3), 65535, np.uint16))
    assert (read_image(sixteen) == 255).all()
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.array([[255, 128], [0, 255]], np.uint8))
    np.testing.assert_array_equal(read_mask(mask), [[True, False], [False, True]])
    np.save(tmp_path / "d.npy", np.ones((3, 4), np.float32) * 2)
    assert read_depth(tmp_path / "d.npy").shape == (3, 4)
    write_pfm(tmp_path / "d.pfm", np.ones((3, 4), np.float32))
    assert read_depth(tmp_path / "d.pfm").mean() == 1.0
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataFormatError, match="bad.npy"):
        read_depth(tmp_path / "bad.npy")
    np.save(tmp_path / "int.npy", np.ones((3, 4), np.int32))
    with pytest.raises(DataFormatError, match="int.npy.*float"):
        read_depth(tmp_path / "int.npy")
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(DataFormatError, match="broken.png"):
        read_image(tmp_path / "broken.png")
