"""``rosdep install`` resolves every key of package.xml for Kilted on Ubuntu noble.

The real ``rosdep`` (pinned in requirements-dev.txt) runs offline against the rosdistro snapshot
in ``shared/rosdistro`` (its README says how), exactly as a ROS user's
``rosdep install --from-paths src --ignore-src`` would, with ``--simulate`` so nothing is
installed. Skipped, with the reason, where that snapshot is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from shared_dir import ROOT, shared_path

ROSDISTRO = shared_path("rosdistro")
DEPEND_TAGS = ("depend", "build_depend", "buildtool_depend", "exec_depend", "test_depend")


def package_keys() -> dict[str, str]:
    """rosdep key -> the package.xml tag that declares it."""
    root = ET.parse(ROOT / "package.xml").getroot()
    return {element.text.strip(): element.tag for tag in DEPEND_TAGS for element in root.iter(tag)}


def ros_packages(distribution: Path) -> set[str]:
    """Package names of the distribution file: repositories' package lists, else the repository name."""
    import yaml

    repositories = yaml.safe_load(distribution.read_text())["repositories"]
    names = set()
    for repo_name, repo in repositories.items():
        release = repo.get("release") or {}
        names.update(release.get("packages") or [repo_name])
    return names


@pytest.fixture(scope="module")
def rosdep_env(tmp_path_factory) -> dict[str, str]:
    if ROSDISTRO is None:
        pytest.skip("no shared/rosdistro here (the offline rosdistro snapshot): rosdep cannot resolve "
                    "keys without the internet")
    work = tmp_path_factory.mktemp("rosdep")
    index = work / "index.yaml"
    index.write_text(
        "%YAML 1.1\n---\ntype: index\nversion: 4\ndistributions:\n  kilted:\n"
        f"    distribution: [file://{ROSDISTRO}/kilted/distribution.yaml]\n"
        "    distribution_status: active\n    distribution_type: ros2\n    python_version: 3\n")
    sources = work / "sources.list.d"
    sources.mkdir()
    (sources / "20-default.list").write_text(
        f"yaml file://{ROSDISTRO}/rosdep/base.yaml\nyaml file://{ROSDISTRO}/rosdep/python.yaml\n")
    env = {**os.environ, "ROSDISTRO_INDEX_URL": f"file://{index}", "ROSDEP_SOURCE_PATH": str(sources),
           "ROS_HOME": str(work / "ros_home"), "ROS_DISTRO": "kilted"}
    update = subprocess.run(rosdep_command("update", "--rosdistro", "kilted"), env=env,
                            capture_output=True, text=True, timeout=600)
    assert update.returncode == 0, update.stdout + update.stderr
    return env


def rosdep_command(*args: str) -> list[str]:
    rosdep = Path(sys.executable).with_name("rosdep")
    if not rosdep.is_file():
        pytest.fail("rosdep is not installed in this environment: pip install -r requirements-dev.txt")
    return [str(rosdep), *args]


def test_package_xml_has_no_buildtool_depend_on_ament_python():
    # ament_python is a build type (<export><build_type>), not a rosdep key
    assert "ament_python" not in package_keys()


def test_every_package_xml_key_resolves_for_kilted_on_noble(rosdep_env):
    proc = subprocess.run(
        rosdep_command("install", "--from-paths", str(ROOT), "--ignore-src", "--rosdistro", "kilted",
                       "--os=ubuntu:noble", "--simulate", "--reinstall", "-y"),
        env=rosdep_env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, output
    assert "Cannot locate rosdep definition" not in output and "ERROR" not in output
    command = r"^\s*(?:apt-get install -y|pip3 install -U(?: -I)?) (\S+)$"
    installs = set(re.findall(command, proc.stdout, re.MULTILINE))
    ros = ros_packages(ROSDISTRO / "kilted" / "distribution.yaml")
    for key in package_keys():
        if key in ros:  # a ROS package: Kilted's binary package
            assert f"ros-kilted-{key.replace('_', '-')}" in installs, key
    # the two non-ROS keys a user most needs: torch from Ubuntu, rosbags from PyPI
    assert {"python3-torch", "rosbags"} <= installs, installs


def test_readme_names_only_keys_that_package_xml_declares():
    readme = (ROOT / "README.md").read_text()
    keys = package_keys()
    named = set(re.findall(r"\bpython3-[a-z0-9-]+\b", readme))
    assert named, "the README names no rosdep key"
    assert named <= set(keys), f"README names keys package.xml lacks: {sorted(named - set(keys))}"
