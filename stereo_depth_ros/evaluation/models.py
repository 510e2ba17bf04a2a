"""Model specs of the evaluation commands (``default``, ``sgbm``, ``learned``, a checkpoint path)
-> named backends; shared by ``eval``, ``eval-bag`` and ``bench``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stereo_depth_ros.backends import BackendError, StereoBackend, default_backend_name, make_backend
from stereo_depth_ros.evaluation import report


def sgbm_range(max_disp: float | None) -> int:
    """SGBM's disparity_range covering ``max_disp`` (a multiple of 16, at least 32)."""
    from stereo_depth_ros.backends.sgbm import range_for

    return range_for(max_disp) if max_disp else 64


def build_backend(spec: str, max_disp: float | None = None, device: str = "auto",
                  precision: str = "auto") -> tuple[str, StereoBackend]:
    """(label, backend) for one ``--model`` value; raises BackendError with the reason."""
    name = default_backend_name() if spec == "default" else spec
    if name == "sgbm":
        return ("sgbm" if spec == "sgbm" else "default (sgbm)",
                make_backend("sgbm", disparity_range=sgbm_range(max_disp)))
    options: dict[str, Any] = {"device": device, "precision": precision}
    if max_disp:
        options["max_disparity"] = float(max_disp)
    if name == "learned":
        label = "learned" if spec == "learned" else "default (learned)"
        return label, make_backend("learned", model="default", **options)
    return spec, make_backend("learned", model=spec, **options)


def compute_shift(backend: StereoBackend, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The backend's match shift as a float32 numpy array (NaN invalid); BackendError on failure."""
    try:
        result = backend.compute(left, right)
    except BackendError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise BackendError(f"{getattr(backend, 'name', 'backend')} failed: {exc}") from exc
    return result.shift.detach().float().cpu().numpy()


def describe(backend: StereoBackend) -> str:
    est = getattr(backend, "estimator", None)
    if est is not None and hasattr(est, "describe"):
        return est.describe()
    return f"{getattr(backend, 'name', type(backend).__name__)} on {getattr(backend, 'device', 'cpu')}"


def is_untrained(backend: StereoBackend) -> bool:
    est = getattr(backend, "estimator", None)
    return bool(est is not None and getattr(est, "meta", {}).get("untrained"))


def new_runs(models: Sequence[tuple[str, StereoBackend]]) -> list[report.ModelRun]:
    """One empty report.ModelRun per (label, backend), noting what each backend is."""
    runs = [report.ModelRun(label, backend=getattr(b, "name", ""), device=str(getattr(b, "device", "")))
            for label, b in models]
    for run, (_, backend) in zip(runs, models, strict=True):
        run.notes.append(describe(backend))
        if is_untrained(backend):
            run.notes.append("UNTRAINED network: its numbers measure nothing but the pipeline")
    return runs
