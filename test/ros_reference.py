"""The real ROS 2 Python ``message_filters`` and ``sensor_msgs_py``, for comparison tests only.

They are wheels in ``../shared/ros2-python/reference/`` (a developer/CI folder next to the
checkout, or where ``STEREO_DEPTH_SHARED`` points; a user's clone lacks it and these tests
then skip, saying why). ``loaded()``
installs them once per run into a temporary folder (``pip --no-deps --target``) and imports
them with that folder on ``sys.path`` for the duration of a ``with`` block only, then removes
the folder from the path and the modules from ``sys.modules``: the rest of the suite keeps the
pip-only set-up users get, where ``compat`` falls back to the package's own equivalents.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

SHARED = Path(os.environ.get("STEREO_DEPTH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
REFERENCE = SHARED / "ros2-python" / "reference"
_ROOTS = ("message_filters", "sensor_msgs_py")
_site: Path | None = None


def _install() -> Path:
    global _site
    if _site is None:
        wheels = sorted(REFERENCE.glob("*.whl"))
        if not wheels:
            pytest.skip(f"no reference wheels in {REFERENCE} (a developer/CI folder; a user's clone "
                        "has no ../shared): the comparison with the real ROS 2 Python packages is skipped")
        target = Path(tempfile.mkdtemp(prefix="ros_reference_"))
        atexit.register(shutil.rmtree, target, ignore_errors=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                               "--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"installing {[w.name for w in wheels]} failed:\n{done.stderr[-2000:]}")
        _site = target
    return _site


@contextlib.contextmanager
def loaded() -> Iterator[SimpleNamespace]:
    """The real modules as ``.message_filters`` and ``.point_cloud2``, inside the block only."""
    import stereo_depth_ros.ros.compat  # noqa: F401 (decided before the real ones are reachable)

    site = str(_install())
    sys.path.insert(0, site)
    try:
        import message_filters
        from sensor_msgs_py import point_cloud2

        assert Path(message_filters.__file__).is_relative_to(site), message_filters.__file__
        yield SimpleNamespace(message_filters=message_filters, point_cloud2=point_cloud2)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(site)
        for name in [m for m in sys.modules if m.split(".")[0] in _ROOTS]:
            del sys.modules[name]
