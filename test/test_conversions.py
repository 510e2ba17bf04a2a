import math

import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from stereo_depth_ros.backends.base import DisparityResult
from stereo_depth_ros.geometry import CameraModelError, StereoGeometry
from stereo_depth_ros.pointcloud import CloudBuilder, cloud_from_disparity
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros._cv_bridge import CvBridge
from stereo_depth_ros.ros.compat import point_cloud2

GEOM = StereoGeometry(fx=200.0, fy=200.0, cx=40.0, cy=30.0, cx_right=37.0, baseline=0.1,
                      width=80, height=60)


def _rgb():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_to_rgb(encoding):
    rgb = _rgb()
    order = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0]}[encoding]
    img = rgb[:, :, order]
    if encoding.endswith("a8"):
        img = np.concatenate([img, np.full((6, 8, 1), 9, np.uint8)], axis=2)
    msg = CvBridge().cv2_to_imgmsg(img, encoding)
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


def test_mono_encodings():
    mono = _rgb()[:, :, 0]
    out = conv.image_to_rgb(CvBridge().cv2_to_imgmsg(mono, "mono8"))
    assert out.shape == (6, 8, 3) and (out[:, :, 1] == mono).all()
    # 12-bit data in mono16: the pair shares one scale, 4095 -> 255
    left = np.array([[0, 4095], [2048, 100]], np.uint16)
    right = np.array([[4095, 0], [100, 2048]], np.uint16)
    lm, rm = (CvBridge().cv2_to_imgmsg(a, "mono16") for a in (left, right))
    lr, rr = conv.stereo_pair_to_rgb(lm, rm)
    assert lr[0, 1, 0] == 255 and rr[0, 0, 0] == 255 and lr[1, 0, 0] == rr[1, 1, 0] == 128


def test_bad_images_have_clear_errors():
    ok = CvBridge().cv2_to_imgmsg(_rgb(), "rgb8")
    with pytest.raises(conv.UnsupportedEncoding, match="'yuv422'"):
        conv.image_to_rgb(Image(height=6, width=8, encoding="yuv422", step=16, data=bytes(96)))
    with pytest.raises(conv.EmptyImage, match="left image is empty"):
        conv.stereo_pair_to_rgb(Image(encoding="rgb8"), Image(encoding="rgb8"))
    small = CvBridge().cv2_to_imgmsg(_rgb()[:5], "rgb8")
    with pytest.raises(conv.SizeMismatch, match="8x6 but right is 8x5"):
        conv.stereo_pair_to_rgb(ok, small)
    truncated = Image(height=6, width=8, encoding="rgb8", step=24, data=bytes(10))
    with pytest.raises(conv.ConversionError, match="cannot be read"):
        conv.image_to_rgb(truncated, "left")


def _infos(baseline=0.1, width=80, height=60):
    header = Header(frame_id="stereo_left_optical_frame")
    g = StereoGeometry(fx=200.0, fy=200.0, cx=40.0, cy=30.0, cx_right=37.0, baseline=0.1,
                       width=width, height=height)
    left = conv.camera_info_from_geometry(g, header)
    right = conv.camera_info_from_geometry(g, header, right=True, frame_id="stereo_right_optical_frame")
    right.p[3] = -200.0 * baseline
    return left, right


def test_camera_info_to_geometry_and_back():
    left, right = _infos()
    assert right.p[3] == pytest.approx(-20.0) and right.header.frame_id == "stereo_right_optical_frame"
    g = conv.geometry_from_camera_info(left, right, 80, 60)
    assert g == GEOM


def test_zero_baseline_needs_override():
    left, right = _infos(baseline=0.0)
    with pytest.raises(CameraModelError, match="baseline"):
        conv.geometry_from_camera_info(left, right, 80, 60)
    assert conv.geometry_from_camera_info(left, right, 80, 60, baseline_override=0.25).baseline == 0.25


def test_camera_info_faults():
    left, right = _infos()
    with pytest.raises(CameraModelError, match="left camera_info is for 80x60 images but the image is 40x30"):
        conv.geometry_from_camera_info(left, right, 40, 30)
    with pytest.raises(CameraModelError, match="calibrated"):
        conv.geometry_from_camera_info(CameraInfo(), right, 80, 60)


def _result(shift):
    return DisparityResult(shift=torch.as_tensor(shift), confidence=None, min_disparity=0.0,
                           max_disparity=63.0, delta_d=1 / 16, valid_window=(70, 7, 242, 225))


def test_disparity_image_fields():
    shift = np.full((60, 80), 13.0, np.float32)
    shift[0, 0] = np.nan
    res = _result(shift)
    header = Header(frame_id="left_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    disparity = shift - GEOM.doffs
    msg = conv.disparity_msg(disparity, res, GEOM, header, right_fx=201.0)
    assert msg.header.frame_id == "left_optical" and msg.header.stamp.nanosec == 345
    assert msg.image.header.stamp.sec == 12 and msg.image.encoding == "32FC1"
    assert (msg.f, msg.t) == (201.0, pytest.approx(0.1))
    assert (msg.min_disparity, msg.max_disparity) == (-3.0, 60.0)   # shift range minus cx_l - cx_r = 3
    assert msg.delta_d == 1 / 16
    vw = msg.valid_window
    assert (vw.x_offset, vw.y_offset, vw.width, vw.height) == (70, 7, 242, 225)
    back = conv.disparity_from_msg(msg)
    assert back[5, 5] == 10.0 and math.isnan(back[0, 0])


def test_depth_and_cloud_messages():
    disparity = np.full((60, 80), 10.0, np.float32)
    disparity[2, 3] = np.nan
    depth = 200.0 * 0.1 / disparity
    header = conv.with_frame(Header(), "fallback_frame")
    assert header.frame_id == "fallback_frame"
    dmsg = conv.depth_msg(torch.from_numpy(depth), header)
    assert (dmsg.encoding, dmsg.step, dmsg.height, dmsg.width) == ("32FC1", 320, 60, 80)
    got = conv.image_32f(dmsg)
    assert got[0, 0] == pytest.approx(2.0) and math.isnan(got[2, 3])
    rgb = np.zeros((60, 80, 3), np.uint8)
    payload = cloud_from_disparity(disparity, GEOM, rgb)
    cloud = conv.cloud_msg(payload, header)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (60, 80, 16, False)
    pts = point_cloud2.read_points(cloud, field_names=["x", "y", "z"])
    assert len(pts) == 4800 and np.isnan(pts["z"][2 * 80 + 3])
    assert pts["z"][0] == pytest.approx(2.0)
    assert pts["x"][0] == pytest.approx((0 - 40.0) * 2.0 / 200.0)


def test_cloud_message_from_a_builder_takes_its_buffer_without_a_copy():
    disparity = np.full((60, 80), 10.0, np.float32)
    disparity[2, 3] = np.nan
    rgb = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    payload = CloudBuilder().build(disparity, GEOM, rgb)
    cloud = conv.cloud_msg(payload, Header(frame_id="f"))
    assert cloud.data is payload.buffer
    assert bytes(cloud.data) == cloud_from_disparity(disparity, GEOM, rgb).tobytes()
    copied = conv.cloud_msg(cloud_from_disparity(disparity, GEOM, rgb), Header(frame_id="f"))
    assert bytes(copied.data) == bytes(cloud.data) and len(copied.data) == 60 * 80 * 16
    empty = conv.cloud_msg(cloud_from_disparity(np.full((6, 8), np.nan, np.float32), GEOM, None,
                                                organized=False), Header(frame_id="f"))
    assert (empty.width, len(empty.data)) == (0, 0)
    assert len(conv.depth_msg(np.zeros((0, 4), np.float32), Header()).data) == 0
