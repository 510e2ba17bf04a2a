"""The package's RViz config, adapted to a source and namespace before rviz2 opens it.

``rviz/stereo_depth.rviz`` names topics as the graph publishes them in the root namespace
(``/points2``, ``/left/image_rect``) and a placeholder fixed frame. :func:`render_rviz_config`
maps each to the topic actually used (the source's input names, the launch namespace) and sets
the fixed frame to the source's left optical frame, so the clouds show without any TF.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from stereo_depth_ros.paths import share_dir
from stereo_depth_ros.sources import SourceConfig, resolve_topic


def default_rviz_path() -> Path:
    return share_dir() / "rviz" / "stereo_depth.rviz"


def _displays(displays: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for display in displays or []:
        yield display
        if "Displays" in display:  # rviz_common/Group
            yield from _displays(display["Displays"])


def displayed_topics(config: Mapping[str, Any]) -> list[str]:
    """Topic names of every display in a parsed rviz2 config (groups included)."""
    topics = []
    for display in _displays(config.get("Visualization Manager", {}).get("Displays", [])):
        topic = display.get("Topic")
        if isinstance(topic, dict) and topic.get("Value"):
            topics.append(str(topic["Value"]))
    return topics


def topic_in_graph(config_topic: str, source: SourceConfig, namespace: str = "") -> str:
    """The fully qualified topic that a config topic (root-namespace name) stands for."""
    relative = config_topic.lstrip("/")
    if relative in source.topics:
        return resolve_topic(source.topics[relative], namespace)
    if relative == "diagnostics":
        return "/diagnostics"
    return resolve_topic(relative, namespace)


def render_rviz_config(source: SourceConfig, namespace: str = "", template: Path | None = None) -> str:
    """The rviz2 config text for ``source`` under ``namespace``."""
    config = yaml.safe_load((template or default_rviz_path()).read_text())
    manager = config["Visualization Manager"]
    for display in _displays(manager.get("Displays", [])):
        topic = display.get("Topic")
        if isinstance(topic, dict) and topic.get("Value"):
            topic["Value"] = topic_in_graph(str(topic["Value"]), source, namespace)
    if source.frame_id:
        manager.setdefault("Global Options", {})["Fixed Frame"] = source.frame_id
    return yaml.safe_dump(config, sort_keys=False)
