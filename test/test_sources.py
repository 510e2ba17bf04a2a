"""Source files (config/sources/*.yaml) and the graph plan both the launch file and the runner use."""

from pathlib import Path

import pytest
import yaml

from stereo_depth_ros.sources import (
    INPUTS,
    SOURCES,
    SourceConfigError,
    available_sources,
    graph_topics,
    load_params_file,
    load_source,
    merge_parameters,
    parse_param_assignment,
    plan_graph,
    resolve_topic,
)


def write_source(tmp_path: Path, data: dict, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def minimal(**extra) -> dict:
    data = {"topics": {name: f"/cam/{name}" for name in INPUTS}}
    data.update(extra)
    return data


def test_every_documented_source_ships_and_maps_all_four_inputs():
    assert sorted(SOURCES) == available_sources()
    for name in SOURCES:
        source = load_source(name)
        assert set(source.topics) == set(INPUTS), name
        assert all("{" not in topic for topic in source.topics.values()), name
        assert source.frame_id and "{" not in source.frame_id, name
        assert source.driver, f"{name} must say how to start its driver"


def test_airsim_topics_follow_the_wrapper_and_take_vehicle_and_camera_names():
    source = load_source("airsim", {"vehicle": "Car1", "left_camera": "cam_l", "right_camera": "cam_r"})
    assert source.topics["left/image_rect"] == "/airsim_node/Car1/cam_l/Scene"
    # camera_info is a child of the image topic in the AirSim ROS 2 wrapper
    assert source.topics["right/camera_info"] == "/airsim_node/Car1/cam_r/Scene/camera_info"
    assert source.frame_id == "cam_l_optical"
    # no baseline in AirSim's P[3] and skewed stamps: both handled by the source's defaults
    assert source.depth_node["approximate_sync"] is True
    assert source.depth_node["baseline"] == pytest.approx(0.25)
    assert source.depth_node["slop"] > 0.02


def test_cosys_airsim_realsense_zed_topic_layouts():
    cosys = load_source("cosys_airsim", {"vehicle": "v"})
    assert cosys.topics["left/image_rect"] == "/airsim_node/v/front_left_Scene/image"
    assert cosys.topics["left/camera_info"] == "/airsim_node/v/front_left_Scene/camera_info"
    rs = load_source("realsense")
    assert rs.topics["left/image_rect"] == "/camera/camera/infra1/image_rect_raw"
    assert rs.topics["right/image_rect"] == "/camera/camera/infra2/image_rect_raw"
    assert "emitter_enabled:=0" in rs.driver
    zed = load_source("zed", {"camera_name": "zedx"})
    assert zed.topics["right/image_rect"] == "/zedx/zed_node/right/color/rect/image"
    assert "video.publish_left_right:=true" in zed.driver


def test_unset_arguments_keep_defaults_and_unknown_arguments_are_rejected():
    assert load_source("airsim", {"vehicle": "", "left_camera": None}).arguments["vehicle"] == "drone_1"
    with pytest.raises(SourceConfigError, match="takes no argument 'vehicle'.*camera_name"):
        load_source("realsense", {"vehicle": "drone_1"})


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(SourceConfigError, match="unknown source 'kinect'.*airsim"):
        load_source("kinect")


def test_a_source_file_given_by_path_is_loaded(tmp_path):
    path = write_source(tmp_path, minimal(depth_node={"baseline": 0.1}))
    source = load_source(str(path))
    assert source.name == "custom"
    assert source.topics["right/image_rect"] == "/cam/right/image_rect"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (minimal(topic_map={}), "unknown key.*topic_map"),
        ({"topics": {"left/image_rect": "/a", "left/camera_info": "/b", "right/image_rect": "/c"}},
         "does not map input.*right/camera_info"),
        ({"topics": {**{n: "/x/" + n for n in INPUTS}, "left/image_raw": "/y"}},
         "unknown input.*left/image_raw"),
        ({"topics": {**{n: "/x/" + n for n in INPUTS}, "left/image_rect": "/{robot}/left"}},
         r"uses \{robot\}"),
        ({"topics": {**{n: "/x/" + n for n in INPUTS}, "left/image_rect": "/cam/0left"}},
         "not a valid ROS 2 topic name"),
        (minimal(depth_node=[1, 2]), "'depth_node' must be a mapping"),
        (minimal(depth_node={"roi": {"x": 1}}), "depth_node.roi must be a scalar"),
        (minimal(use_sim_time="yes"), "use_sim_time"),
        (minimal(extra_nodes=[{"package": "image_proc"}]), "needs 'package' and 'executable'"),
        (minimal(extra_nodes=[{"package": "p", "executable": "e", "remap": {}}]), "unknown key.*remap"),
    ],
)
def test_bad_source_files_get_a_clear_error(tmp_path, data, message):
    path = write_source(tmp_path, data)
    with pytest.raises(SourceConfigError, match=message) as info:
        load_source(str(path))
    assert str(path) in str(info.value) or "custom" in str(info.value)


def test_not_yaml_is_reported(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("topics: [unclosed\n")
    with pytest.raises(SourceConfigError, match="not valid YAML"):
        load_source(str(path))


def test_plan_merges_params_file_then_source_then_overrides_with_declared_types():
    source = load_source("airsim")
    specs = {s.key: s for s in plan_graph(source, depth_params={"baseline": 1, "device": "cpu"})}
    assert set(specs) == {"depth_node", "nearest_object"}
    depth = specs["depth_node"].parameters
    assert depth["baseline"] == 1.0 and isinstance(depth["baseline"], float)  # int coerced to double
    assert depth["device"] == "cpu"                      # override
    assert depth["approximate_sync"] is True             # source
    assert "backend" in depth                             # params file
    assert depth["use_sim_time"] is False
    assert dict(specs["depth_node"].remappings)["right/camera_info"] == source.topics["right/camera_info"]
    # the nearest-object node only subscribes to the left inputs (and the depth node's disparity)
    assert {src for src, _ in specs["nearest_object"].remappings} == {"left/image_rect", "left/camera_info"}


def test_plan_options_select_nodes_and_sim_time():
    synthetic = plan_graph(load_source("synthetic"), nearest_object=False, use_sim_time=True)
    assert [s.executable for s in synthetic] == ["synthetic_camera", "depth_node"]
    assert all(s.parameters["use_sim_time"] is True for s in synthetic)
    assert all(not s.remappings for s in synthetic)  # synthetic topics are the inputs' own names
    bag = plan_graph(load_source("bag"))
    assert all(s.parameters["use_sim_time"] is True for s in bag)


def test_bad_override_types_are_named():
    with pytest.raises(SourceConfigError, match="'approximate_sync' is a boolean"):
        plan_graph(load_source("airsim"), depth_params={"approximate_sync": "maybe"})
    with pytest.raises(SourceConfigError, match="'baseline' is a number"):
        merge_parameters({"baseline": 0.25}, {"baseline": "wide"})


def test_ros_args_and_graph_topics_under_a_namespace():
    source = load_source("realsense")
    specs = plan_graph(source, namespace="/robot1/")
    depth = next(s for s in specs if s.key == "depth_node")
    assert depth.namespace == "robot1"
    args = depth.ros_args()
    assert args[0] == "--ros-args"
    assert "left/image_rect:=/camera/camera/infra1/image_rect_raw" in args
    topics = graph_topics(specs, source)
    assert {"/robot1/disparity", "/robot1/points2", "/robot1/nearest_object/marker",
            "/camera/camera/infra1/image_rect_raw"} <= topics
    assert resolve_topic("depth", "") == "/depth"
    assert resolve_topic("/diagnostics", "ns") == "/diagnostics"


def test_params_files_and_param_assignments(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters: {a: 1, b: x}\ndepth_node:\n  ros__parameters: {b: y}\n")
    assert load_params_file(path, "depth_node") == {"a": 1, "b": "y"}
    assert load_params_file(path, "other") == {"a": 1, "b": "x"}
    assert parse_param_assignment("baseline:=0.12") == ("baseline", 0.12)
    assert parse_param_assignment("approximate_sync:=true") == ("approximate_sync", True)
    assert parse_param_assignment("model:=/w/x.pt") == ("model", "/w/x.pt")
    with pytest.raises(SourceConfigError, match="name:=value"):
        parse_param_assignment("baseline=0.12")
