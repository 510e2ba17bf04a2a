"""The launch files, checked without ``ros2 launch`` (no launch/launch_ros wheels on PyPI).

The launch file is executed against a small recording stand-in for the launch/launch_ros API
(installed in sys.modules only for the duration of a test): its OpaqueFunction runs for every
source, and what it would start (executables, names, remaps, parameters, files) is checked.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from stereo_depth_ros import launch_checks
from stereo_depth_ros.rviz_config import displayed_topics, render_rviz_config
from stereo_depth_ros.sources import INPUTS, SOURCES, graph_topics, load_source, plan_graph, resolve_topic

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
MAIN_LAUNCH = ROOT / "launch" / "depth.launch.py"
RVIZ = ROOT / "rviz" / "stereo_depth.rviz"


def console_scripts() -> dict[str, str]:
    """name -> 'module:function' from setup.py's console_scripts."""
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


# --- a recording stand-in for the launch API --------------------------------------------------

class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Context:
    def __init__(self, configurations: dict[str, str]):
        self.launch_configurations = configurations


class _LaunchConfiguration:
    def __init__(self, name: str, default=None):
        self.name = name

    def perform(self, context: _Context) -> str:
        return context.launch_configurations[self.name]


class _DeclareLaunchArgument(_Action):
    def __init__(self, name, default_value=None, description="", choices=None, **kwargs):
        super().__init__(name, **kwargs)
        self.name, self.default_value, self.choices = name, default_value, choices


class _OpaqueFunction(_Action):
    def __init__(self, function, args=None, kwargs=None):
        super().__init__()
        self.function = function


class _LaunchDescription:
    def __init__(self, entities=()):
        self.entities = list(entities)


def _stub_modules() -> dict[str, types.ModuleType]:
    launch = types.ModuleType("launch")
    launch.LaunchDescription = _LaunchDescription
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = _DeclareLaunchArgument
    actions.OpaqueFunction = _OpaqueFunction
    actions.LogInfo = type("LogInfo", (_Action,), {})
    actions.IncludeLaunchDescription = type("IncludeLaunchDescription", (_Action,), {})
    substitutions = types.ModuleType("launch.substitutions")
    substitutions.LaunchConfiguration = _LaunchConfiguration
    sources = types.ModuleType("launch.launch_description_sources")
    sources.PythonLaunchDescriptionSource = type("PythonLaunchDescriptionSource", (_Action,), {})
    launch.actions, launch.substitutions, launch.launch_description_sources = actions, substitutions, sources
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (_Action,), {})
    descriptions = types.ModuleType("launch_ros.parameter_descriptions")
    descriptions.ParameterValue = _ParameterValue
    launch_ros.actions, launch_ros.parameter_descriptions = ros_actions, descriptions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch.launch_description_sources": sources, "launch_ros": launch_ros,
            "launch_ros.actions": ros_actions, "launch_ros.parameter_descriptions": descriptions}


class _ParameterValue:
    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type


def node_parameters(node) -> dict:
    """The single parameter dict a Node got, ParameterValue wrappers unwrapped (strings must be
    wrapped as value_type=str, else launch_ros would YAML-parse them)."""
    (params,) = node.kwargs["parameters"]
    out = {}
    for name, value in params.items():
        if isinstance(value, _ParameterValue):
            assert value.value_type is str and isinstance(value.value, str), name
            value = value.value
        else:
            assert not isinstance(value, str), f"{name}: a bare string would be YAML-parsed by launch_ros"
        out[name] = value
    return out


@pytest.fixture
def launch_api(monkeypatch):
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    # rviz2 and image_proc are not installed here: the tests that need them missing say so
    monkeypatch.setattr(launch_checks, "executable_installed", lambda package, executable: True)


def load_launch_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_launch_{path.stem.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_launch(path: Path, **overrides: str) -> tuple[list, list]:
    """(declared arguments, started Node actions) for the given launch arguments."""
    description = load_launch_file(path).generate_launch_description()
    declared = [e for e in description.entities if isinstance(e, _DeclareLaunchArgument)]
    configurations = {a.name: a.default_value for a in declared}
    for name, value in overrides.items():
        assert name in configurations, f"{name} is not a declared launch argument"
        arg = next(a for a in declared if a.name == name)
        assert not arg.choices or value in arg.choices, f"{name}:={value} not in {arg.choices}"
        configurations[name] = value
    context = _Context(configurations)
    nodes = []
    for entity in description.entities:
        if isinstance(entity, _OpaqueFunction):
            nodes += [a for a in entity.function(context) if type(a).__name__ == "Node"]
    return declared, nodes


# --- static checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_parse_and_define_generate_launch_description(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), "exec")
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def test_main_launch_exists_with_the_documented_arguments(launch_api):
    declared, _ = run_launch(MAIN_LAUNCH)
    names = {a.name for a in declared}
    assert {"source", "namespace", "backend", "model", "device", "nearest_object", "rviz",
            "use_sim_time", "vehicle", "left_camera", "right_camera", "approximate_sync",
            "baseline", "slop"} <= names
    source_arg = next(a for a in declared if a.name == "source")
    assert sorted(source_arg.choices) == sorted(SOURCES)


def test_every_source_template_argument_is_a_launch_argument(launch_api):
    declared, _ = run_launch(MAIN_LAUNCH)
    names = {a.name for a in declared}
    for source in SOURCES:
        assert set(load_source(source).arguments) <= names, source


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_starts_package_executables_wired_like_the_source_file(launch_api, source):
    _, nodes = run_launch(MAIN_LAUNCH, source=source, namespace="cam")
    scripts = console_scripts()
    ours = [n for n in nodes if n.kwargs["package"] == "stereo_depth_ros"]
    executables = [n.kwargs["executable"] for n in ours]
    assert "depth_node" in executables and "nearest_object_node" in executables
    assert ("synthetic_camera" in executables) == (source == "synthetic")
    for node in ours:
        assert node.kwargs["executable"] in scripts, f"{node.kwargs['executable']} is not a console script"
        assert node.kwargs["namespace"] == "cam"
    depth = next(n for n in ours if n.kwargs["executable"] == "depth_node")
    remaps = dict(depth.kwargs["remappings"])
    expected = load_source(source).topics
    for name in INPUTS:
        assert remaps.get(name, name) == expected[name]
    params = node_parameters(depth)
    assert params == dict(next(s for s in plan_graph(load_source(source), namespace="cam")
                               if s.key == "depth_node").parameters)


def test_launch_arguments_reach_the_nodes(launch_api):
    _, nodes = run_launch(MAIN_LAUNCH, source="airsim", vehicle="Car1", baseline="0.3",
                          approximate_sync="false", device="cpu", nearest_object="false",
                          use_sim_time="true")
    executables = [n.kwargs["executable"] for n in nodes]
    assert executables == ["depth_node"]
    params = node_parameters(nodes[0])
    assert params["baseline"] == pytest.approx(0.3)
    assert params["approximate_sync"] is False
    assert params["device"] == "cpu"
    assert params["use_sim_time"] is True
    assert dict(nodes[0].kwargs["remappings"])["left/image_rect"] == "/airsim_node/Car1/front_left/Scene"


def test_nearest_object_arguments_reach_its_node(launch_api):
    _, nodes = run_launch(MAIN_LAUNCH, source="zed", nearest_backend="threshold", device="cuda")
    nearest = next(n for n in nodes if n.kwargs["executable"] == "nearest_object_node")
    params = node_parameters(nearest)
    assert params["backend"] == "threshold" and params["device"] == "cuda"
    assert dict(nearest.kwargs["remappings"]) == {
        "left/image_rect": "/zed/zed_node/left/color/rect/image",
        "left/camera_info": "/zed/zed_node/left/color/rect/camera_info",
    }


def test_usb_source_adds_image_proc_rectification(launch_api):
    _, nodes = run_launch(MAIN_LAUNCH, source="usb")
    rectify = [n for n in nodes if n.kwargs["package"] == "image_proc"]
    assert {n.kwargs["namespace"] for n in rectify} == {"/stereo/left", "/stereo/right"}
    for node in rectify:
        # image_proc publishes <ns>/image_rect: exactly the topics the usb source feeds the depth node
        assert resolve_topic("image_rect", node.kwargs["namespace"]) in load_source("usb").topics.values()


def test_rviz_is_started_with_a_config_adapted_to_the_source(launch_api):
    _, nodes = run_launch(MAIN_LAUNCH, source="realsense", rviz="true", namespace="front")
    (rviz,) = [n for n in nodes if n.kwargs["executable"] == "rviz2"]
    config_path = Path(rviz.kwargs["arguments"][rviz.kwargs["arguments"].index("-d") + 1])
    try:
        config = yaml.safe_load(config_path.read_text())
    finally:
        config_path.unlink()
    topics = displayed_topics(config)
    assert "/camera/camera/infra1/image_rect_raw" in topics
    assert "/front/points2" in topics
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "camera_infra1_optical_frame"


def test_a_bad_launch_argument_is_a_clear_error(launch_api):
    with pytest.raises(Exception, match="takes no argument 'vehicle'"):
        run_launch(MAIN_LAUNCH, source="zed", vehicle="drone_1")
    with pytest.raises(RuntimeError, match="rviz"):
        description = load_launch_file(MAIN_LAUNCH).generate_launch_description()
        configurations = {a.name: a.default_value for a in description.entities
                          if isinstance(a, _DeclareLaunchArgument)}
        configurations["rviz"] = "yes"
        next(e for e in description.entities if isinstance(e, _OpaqueFunction)).function(
            _Context(configurations))


def test_launched_executables_exist_as_modules():
    scripts = console_scripts()
    for executable in ("depth_node", "synthetic_camera", "nearest_object_node"):
        module = scripts[executable].split(":")[0]
        assert importlib.util.find_spec(module) is not None, f"{executable}: module {module} is missing"


def test_config_files_read_by_the_launch_exist():
    for name in ("depth_node.yaml", "nearest_object.yaml"):
        data = yaml.safe_load((ROOT / "config" / name).read_text())
        assert isinstance(data["/**"]["ros__parameters"], dict)
    for source in SOURCES:
        assert (ROOT / "config" / "sources" / f"{source}.yaml").is_file()
    assert RVIZ.is_file()


# --- RViz ---------------------------------------------------------------------------------------

def test_rviz_config_shows_the_required_displays():
    config = yaml.safe_load(RVIZ.read_text())
    displays = config["Visualization Manager"]["Displays"]
    by_topic = {d["Topic"]["Value"]: d for d in displays if isinstance(d.get("Topic"), dict)}
    assert by_topic["/left/image_rect"]["Class"] == "rviz_default_plugins/Image"
    assert by_topic["/depth"]["Class"] == "rviz_default_plugins/Image"
    assert by_topic["/points2"]["Class"] == "rviz_default_plugins/PointCloud2"
    assert by_topic["/points2"]["Color Transformer"] == "RGB8"
    assert by_topic["/nearest_object/edge_points"]["Class"] == "rviz_default_plugins/PointCloud2"
    assert by_topic["/nearest_object/marker"]["Class"] == "rviz_default_plugins/Marker"


@pytest.mark.parametrize("source", SOURCES)
def test_every_topic_rviz_displays_is_published_by_the_launch_graph(source):
    loaded = load_source(source)
    for namespace in ("", "robot"):
        config = yaml.safe_load(render_rviz_config(loaded, namespace, template=RVIZ))
        published = graph_topics(plan_graph(loaded, namespace=namespace, nearest_object=True), loaded)
        missing = set(displayed_topics(config)) - published
        assert not missing, f"{source}: rviz shows topics nothing publishes: {missing}"
        assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == loaded.frame_id


def test_airsim_shortcut_is_the_main_graph_with_source_airsim_and_no_source_argument(launch_api):
    declared, nodes = run_launch(ROOT / "launch" / "airsim.launch.py", vehicle="Car1")
    names = {a.name for a in declared}
    assert "source" not in names  # --show-args must not offer what the file ignores
    assert {"vehicle", "left_camera", "right_camera", "rviz", "baseline", "namespace"} <= names
    assert not names & {"camera_namespace", "node_name", "stereo_namespace", "left_image"}, names
    depth = next(n for n in nodes if n.kwargs["executable"] == "depth_node")
    assert dict(depth.kwargs["remappings"])["left/image_rect"] == "/airsim_node/Car1/front_left/Scene"
    assert node_parameters(depth)["baseline"] == pytest.approx(0.25)
    main_declared, _ = run_launch(MAIN_LAUNCH)
    main_defaults = {a.name: a.default_value for a in main_declared}
    assert all(main_defaults[a.name] == a.default_value for a in declared)


# --- companions from other packages: found before anything starts ------------------------------

def _missing(*absent: str):
    return lambda package, executable: package not in absent


@pytest.mark.parametrize(("overrides", "package", "apt"), [
    ({"rviz": "true"}, "rviz2", "ros-kilted-rviz2"),
    ({"source": "usb"}, "image_proc", "ros-kilted-image-proc"),
])
def test_a_missing_companion_stops_the_launch_before_any_node_with_one_message(
        launch_api, monkeypatch, overrides, package, apt):
    monkeypatch.setenv("ROS_DISTRO", "kilted")
    monkeypatch.setattr(launch_checks, "executable_installed", _missing(package))
    with pytest.raises(launch_checks.MissingCompanion) as info:
        run_launch(MAIN_LAUNCH, **overrides)  # raises inside the one action that returns every node
    message = str(info.value)
    assert "nothing started" in message and f"'{package}'" in message and apt in message
    assert "\n" not in message
    _, nodes = run_launch(MAIN_LAUNCH)  # the same graph without the option starts
    assert nodes


def test_every_missing_companion_is_named_at_once(launch_api, monkeypatch):
    monkeypatch.setattr(launch_checks, "executable_installed", _missing("rviz2", "image_proc"))
    both = r"'image_proc' for source:=usb.*'rviz2' for rviz:=true"
    with pytest.raises(launch_checks.MissingCompanion, match=both):
        run_launch(MAIN_LAUNCH, source="usb", rviz="true")


def test_executable_installed_reads_the_ament_index(tmp_path, monkeypatch):
    prefix = tmp_path / "install"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "fake_pkg").write_text("")
    exe = prefix / "lib" / "fake_pkg" / "fake_node"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert not launch_checks.executable_installed("fake_pkg", "fake_node")  # not executable
    exe.chmod(0o755)
    assert launch_checks.executable_installed("fake_pkg", "fake_node")
    assert not launch_checks.executable_installed("fake_pkg", "other_node")
    assert not launch_checks.executable_installed("absent_pkg_xyz", "fake_node")
