"""Camera sources: the one description of how the node graph is wired to each camera driver.

``config/sources/<source>.yaml`` maps the depth node's four inputs (``left/image_rect``,
``left/camera_info``, ``right/image_rect``, ``right/camera_info``) to the topics a driver
publishes, and gives the node parameter defaults that driver needs (AirSim: approximate sync and
the baseline its camera_info lacks). Both ``launch/depth.launch.py`` and ``stereo-depth run``
read it through :func:`load_source` and :func:`plan_graph`, so the wiring tested here with the
in-process runner is the wiring ``ros2 launch`` starts.

A source file::

    description: one line
    driver: how to start the camera driver (a shell command, for humans)
    arguments: {vehicle: drone_1}          # template values, overridable by launch arguments
    frame_id: "{left_camera}_optical"      # the left optical frame (RViz fixed frame)
    use_sim_time: false
    topics: {left/image_rect: /airsim_node/{vehicle}/..., ...}   # all four inputs
    depth_node: {approximate_sync: true}   # parameter defaults for this source
    nearest_object: {}
    synthetic_camera: {rate: 10.0}         # present (a mapping) only when the graph starts it
    extra_nodes: []                        # other packages' nodes the launch file starts
    ground_truth: /airsim_node/{vehicle}/{left_camera}/DepthPlanar   # optional: eval-bag --source

No rclpy here: this module is imported by the launch file and by tests.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stereo_depth_ros.paths import config_path

PACKAGE = "stereo_depth_ros"
INPUTS: tuple[str, ...] = ("left/image_rect", "left/camera_info", "right/image_rect", "right/camera_info")
SOURCES: tuple[str, ...] = ("synthetic", "airsim", "cosys_airsim", "realsense", "zed", "usb", "bag")

_KEYS = {
    "description", "driver", "arguments", "frame_id", "use_sim_time", "topics",
    "depth_node", "nearest_object", "synthetic_camera", "extra_nodes", "ground_truth",
}
_EXTRA_NODE_KEYS = {"package", "executable", "name", "namespace", "remappings", "parameters", "arguments"}
# A ROS 2 topic name: absolute or relative tokens of [A-Za-z0-9_], no token starting with a digit.
_TOPIC_RE = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


class SourceConfigError(ValueError):
    """A source file (or its arguments) is wrong; the message names the file and the problem."""


@dataclass(frozen=True)
class NodeRole:
    """One of the package's own nodes: its console script, default name, topics in and out."""

    key: str
    executable: str
    params_file: str | None
    subscribes: tuple[str, ...]
    publishes: tuple[str, ...]


# Topic names relative to the graph's namespace. The inputs are remapped per source.
ROLES: dict[str, NodeRole] = {
    "synthetic_camera": NodeRole(
        "synthetic_camera", "synthetic_camera", None, (),
        INPUTS + ("ground_truth/disparity", "ground_truth/depth"),
    ),
    "depth_node": NodeRole(
        "depth_node", "depth_node", "depth_node.yaml", INPUTS,
        ("disparity", "depth", "points2", "confidence", "/diagnostics"),
    ),
    "nearest_object": NodeRole(
        "nearest_object", "nearest_object_node", "nearest_object.yaml",
        ("disparity", "left/image_rect", "left/camera_info"),
        ("nearest_object/mask", "nearest_object/edges", "nearest_object/edge_points",
         "nearest_object/distance", "nearest_object/marker"),
    ),
}


@dataclass(frozen=True)
class ExtraNode:
    """A node from another package (e.g. image_proc rectification for a USB pair)."""

    package: str
    executable: str
    name: str | None = None
    namespace: str | None = None
    remappings: tuple[tuple[str, str], ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceConfig:
    """A loaded, validated, template-filled source description."""

    name: str
    path: Path
    description: str
    driver: str
    arguments: Mapping[str, str]
    frame_id: str
    use_sim_time: bool
    topics: Mapping[str, str]
    depth_node: Mapping[str, Any]
    nearest_object: Mapping[str, Any]
    synthetic_camera: Mapping[str, Any] | None
    extra_nodes: tuple[ExtraNode, ...] = ()
    ground_truth: str | None = None  # a ground-truth image topic the source records (eval-bag)

    def remappings(self, subscribed: Iterable[str] = INPUTS) -> list[tuple[str, str]]:
        """(from, to) remap rules for the inputs among ``subscribed`` that the source renames."""
        return [(name, self.topics[name]) for name in subscribed
                if name in self.topics and self.topics[name] != name]


@dataclass(frozen=True)
class NodeSpec:
    """One node of the planned graph, in the form both launch_ros.Node and rclpy Node take."""

    key: str
    package: str
    executable: str
    name: str
    namespace: str
    remappings: tuple[tuple[str, str], ...]
    parameters: Mapping[str, Any]
    publishes: tuple[str, ...]

    def ros_args(self) -> list[str]:
        """``--ros-args -r from:=to ...`` for rclpy ``Node(cli_args=...)``."""
        args = ["--ros-args"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


def sources_dir() -> Path:
    return config_path("sources")


def available_sources() -> list[str]:
    """Names of the source files shipped in config/sources/."""
    return sorted(p.stem for p in sources_dir().glob("*.yaml"))


def source_path(name_or_path: str | Path) -> Path:
    """A source name (``airsim``) or a path to a YAML file -> the file's path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise SourceConfigError(f"source file {path} does not exist")
        return path
    path = sources_dir() / f"{text}.yaml"
    if not path.is_file():
        raise SourceConfigError(
            f"unknown source {text!r}: choose one of {', '.join(available_sources())} "
            f"or give the path of a source YAML file"
        )
    return path


def _fill(template: Any, values: Mapping[str, str], where: str, path: Path) -> Any:
    """Fill ``{name}`` placeholders in strings (recursively in lists and mappings)."""
    if isinstance(template, str):
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        missing = [n for n in names if n not in values]
        if missing:
            raise SourceConfigError(
                f"{path}: {where} uses {{{missing[0]}}}, which is not one of its arguments "
                f"({', '.join(sorted(values)) or 'none declared'})"
            )
        return template.format_map(values) if names else template
    if isinstance(template, list):
        return [_fill(v, values, f"{where}[{i}]", path) for i, v in enumerate(template)]
    if isinstance(template, dict):
        return {k: _fill(v, values, f"{where}.{k}", path) for k, v in template.items()}
    return template


def _mapping(data: Any, key: str, path: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise SourceConfigError(f"{path}: '{key}' must be a mapping, got {type(value).__name__}")
    for k, v in value.items():
        if isinstance(v, dict) or (
            isinstance(v, list) and not all(isinstance(x, (int, float, str, bool)) for x in v)
        ):
            raise SourceConfigError(f"{path}: {key}.{k} must be a scalar or a list of scalars")
    return dict(value)


def _check_topic(topic: Any, where: str, path: Path) -> str:
    if not isinstance(topic, str) or not _TOPIC_RE.match(topic):
        raise SourceConfigError(f"{path}: {where} = {topic!r} is not a valid ROS 2 topic name")
    return topic


def _extra_nodes(raw: Any, path: Path) -> tuple[ExtraNode, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SourceConfigError(f"{path}: 'extra_nodes' must be a list of mappings")
    nodes = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not {"package", "executable"} <= set(entry):
            raise SourceConfigError(f"{path}: extra_nodes[{i}] needs 'package' and 'executable'")
        unknown = set(entry) - _EXTRA_NODE_KEYS
        if unknown:
            raise SourceConfigError(
                f"{path}: extra_nodes[{i}] has unknown key(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(_EXTRA_NODE_KEYS))}"
            )
        remaps = entry.get("remappings") or {}
        if not isinstance(remaps, dict):
            raise SourceConfigError(f"{path}: extra_nodes[{i}].remappings must be a mapping from: to")
        nodes.append(ExtraNode(
            package=str(entry["package"]), executable=str(entry["executable"]),
            name=entry.get("name"), namespace=entry.get("namespace"),
            remappings=tuple((str(k), str(v)) for k, v in remaps.items()),
            parameters=dict(entry.get("parameters") or {}),
            arguments=tuple(str(a) for a in entry.get("arguments") or ()),
        ))
    return tuple(nodes)


def load_source(name_or_path: str | Path, arguments: Mapping[str, Any] | None = None) -> SourceConfig:
    """Read, validate and fill a source file.

    ``arguments`` override the file's ``arguments`` defaults (vehicle, camera names, ...); entries
    whose value is None or "" are ignored (an unset launch argument), unknown names are an error.
    """
    path = source_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SourceConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(data) - _KEYS
    if unknown:
        raise SourceConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}"
        )

    defaults = _mapping(data, "arguments", path)
    values = {k: "" if v is None else str(v) for k, v in defaults.items()}
    for key, value in (arguments or {}).items():
        if value is None or value == "":
            continue
        if key not in values:
            raise SourceConfigError(
                f"source {path.stem!r} takes no argument {key!r}; it takes: "
                f"{', '.join(sorted(values)) or 'none'}"
            )
        values[key] = str(value)
    topics_raw = data.get("topics")
    if not isinstance(topics_raw, dict):
        raise SourceConfigError(f"{path}: 'topics' must map the four inputs {', '.join(INPUTS)}")
    extra = set(topics_raw) - set(INPUTS)
    if extra:
        raise SourceConfigError(
            f"{path}: topics has unknown input(s) {', '.join(sorted(extra))}; "
            f"the inputs are {', '.join(INPUTS)}"
        )
    missing = [name for name in INPUTS if name not in topics_raw]
    if missing:
        raise SourceConfigError(f"{path}: topics does not map input(s) {', '.join(missing)}")
    topics = {
        name: _check_topic(_fill(topics_raw[name], values, f"topics.{name}", path), f"topics.{name}", path)
        for name in INPUTS
    }

    synthetic = data.get("synthetic_camera")
    if synthetic is not None and not isinstance(synthetic, dict):
        raise SourceConfigError(f"{path}: 'synthetic_camera' must be a mapping of its parameters (or absent)")
    use_sim_time = data.get("use_sim_time", False)
    if not isinstance(use_sim_time, bool):
        raise SourceConfigError(f"{path}: 'use_sim_time' must be true or false")

    return SourceConfig(
        name=path.stem,
        path=path,
        description=str(data.get("description", "")),
        driver=str(data.get("driver", "")).strip(),
        arguments=values,
        frame_id=str(_fill(data.get("frame_id", ""), values, "frame_id", path)),
        use_sim_time=use_sim_time,
        topics=topics,
        depth_node=_fill(_mapping(data, "depth_node", path), values, "depth_node", path),
        nearest_object=_fill(_mapping(data, "nearest_object", path), values, "nearest_object", path),
        synthetic_camera=None if synthetic is None else _fill(_mapping(data, "synthetic_camera", path),
                                                              values, "synthetic_camera", path),
        extra_nodes=_extra_nodes(_fill(data.get("extra_nodes"), values, "extra_nodes", path), path),
        ground_truth=(None if data.get("ground_truth") is None else _check_topic(
            _fill(data["ground_truth"], values, "ground_truth", path), "ground_truth", path)),
    )


def load_params_file(path: str | Path, node_name: str | None = None) -> dict[str, Any]:
    """The ``ros__parameters`` of a ROS 2 params file for ``node_name`` (``/**`` entries first)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SourceConfigError(f"{path}: not a ROS 2 parameters file (expected node: ros__parameters:)")
    params: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}" if node_name else None):
        if key and isinstance(data.get(key), dict):
            section = data[key].get("ros__parameters")
            if not isinstance(section, dict):
                raise SourceConfigError(f"{path}: '{key}' has no ros__parameters mapping")
            params.update(section)
    return params


def parse_param_value(text: str) -> Any:
    """A parameter value as ``ros2 param set``/``-p name:=value`` read it (YAML scalars)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None or isinstance(value, dict) else value


def parse_param_assignment(text: str) -> tuple[str, Any]:
    """``name:=value`` -> (name, typed value)."""
    name, sep, value = text.partition(":=")
    if not sep or not name.strip():
        raise SourceConfigError(f"parameter {text!r} is not of the form name:=value")
    return name.strip(), parse_param_value(value)


def _coerce(default: Any, value: Any, name: str) -> Any:
    """Make an override match the declared type of its default (ROS 2 rejects 1 for a double)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise SourceConfigError(f"parameter {name!r} is a boolean (true/false), got {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    if isinstance(default, (int, float)) and isinstance(value, str):
        raise SourceConfigError(f"parameter {name!r} is a number, got {value!r}")
    return value


def merge_parameters(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; values are coerced to the type of the first layer that sets them."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name] = _coerce(merged.get(name), value, name)
    return merged


def plan_graph(
    source: SourceConfig,
    *,
    namespace: str = "",
    nearest_object: bool = True,
    use_sim_time: bool | None = None,
    depth_params: Mapping[str, Any] | None = None,
    nearest_params: Mapping[str, Any] | None = None,
    synthetic_params: Mapping[str, Any] | None = None,
) -> list[NodeSpec]:
    """The package's nodes for ``source``: names, remaps and merged parameters.

    Parameters merge in this order (later wins): config/<node>.yaml, the source file, the caller's
    overrides (launch arguments / ``--param``). ``use_sim_time`` defaults to the source's.
    """
    sim_time = source.use_sim_time if use_sim_time is None else bool(use_sim_time)
    wanted: list[tuple[NodeRole, Mapping[str, Any], Mapping[str, Any]]] = []
    if source.synthetic_camera is not None:
        wanted.append((ROLES["synthetic_camera"], source.synthetic_camera, synthetic_params or {}))
    wanted.append((ROLES["depth_node"], source.depth_node, depth_params or {}))
    if nearest_object:
        wanted.append((ROLES["nearest_object"], source.nearest_object, nearest_params or {}))

    specs = []
    for role, from_source, overrides in wanted:
        defaults = {}
        if role.params_file:
            defaults = load_params_file(config_path(role.params_file), role.executable)
        params = merge_parameters(defaults, from_source, overrides, {"use_sim_time": sim_time})
        specs.append(NodeSpec(
            key=role.key,
            package=PACKAGE,
            executable=role.executable,
            name=role.executable,
            namespace=namespace.strip("/"),
            # publishers are remapped too, so the synthetic camera follows a renamed input
            remappings=tuple(source.remappings(role.subscribes or role.publishes)),
            parameters=params,
            publishes=role.publishes,
        ))
    return specs


def resolve_topic(topic: str, namespace: str = "") -> str:
    """Fully qualified name of a topic as seen from ``namespace``."""
    if topic.startswith("/"):
        return topic
    ns = namespace.strip("/")
    return f"/{ns}/{topic}" if ns else f"/{topic}"


def graph_topics(specs: Iterable[NodeSpec], source: SourceConfig) -> set[str]:
    """Every fully qualified topic the planned graph publishes or is fed from the source."""
    topics: set[str] = set()
    for spec in specs:
        remap = dict(spec.remappings)
        topics.update(resolve_topic(remap.get(t, t), spec.namespace) for t in spec.publishes)
    namespace = next((s.namespace for s in specs), "")
    topics.update(resolve_topic(t, namespace) for t in source.topics.values())
    return topics
