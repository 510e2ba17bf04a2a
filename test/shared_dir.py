"""Where the developers' and CI's ``shared/`` folder is, when there is one.

CI clones the repository with ``shared/`` beside it (``../shared``); a developer's worktree may sit
one level deeper. ``STEREO_DEPTH_SHARED`` names it explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path | None:
    """``shared/<parts>`` if it exists, else None."""
    candidates = [Path(os.environ["STEREO_DEPTH_SHARED"])] if os.environ.get("STEREO_DEPTH_SHARED") else []
    candidates += [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
    for base in candidates:
        path = base.joinpath(*parts)
        if path.exists():
            return path.resolve()
    return None
