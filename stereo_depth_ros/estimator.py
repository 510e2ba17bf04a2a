"""Load a stereo checkpoint, pick device and precision, run the network on a rectified pair.

Checkpoints are self-describing dicts of plain tensors / str / numbers / lists / dicts::

    {"format": "stereo_depth_ros.checkpoint", "format_version": 1,
     "arch": "fast", "config": {...constructor kwargs...},
     "state_dict": {name: tensor}, "meta": {"training_data", "steps", "metrics",
     "command", "date", "package_version", ...}, ["optimizer", "scheduler", "train_state"]}

They are written with ``torch.save`` and read ONLY with ``torch.load(weights_only=True)``,
which refuses anything that would construct arbitrary objects or run code.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_depth_ros.models.registry import UnknownModelError, build_model, model_names
from stereo_depth_ros.paths import WEIGHTS_DIR

FORMAT = "stereo_depth_ros.checkpoint"
FORMAT_VERSION = 1
# shipped names: "default" exists only once a model passed the acceptance check (weights/README.md)
NAMED_CHECKPOINTS = {"default": "default_stereo.pt", "fast_cpu_candidate": "fast_cpu_candidate.pt"}
NOT_STEREO = {"unet": "the nearest-object U-Net"}  # registry entries that take no stereo pair
_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

log = logging.getLogger(__name__)
# torch's advice on refused files (load unsafely, allow-list classes): never passed on
_ADVICE = re.compile(r"weights_only|safe_globals|trusted source|trust the source|Weights only load failed",
                     re.I)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """'default' (and other shipped names) -> the file in the package's weights/; else a path."""
    key = str(path_or_name)
    if key in NAMED_CHECKPOINTS:
        return WEIGHTS_DIR / NAMED_CHECKPOINTS[key]
    return Path(path_or_name).expanduser()


def make_checkpoint(
    model: nn.Module, arch: str, config: dict[str, Any], meta: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A checkpoint dict for ``model``; ``extra`` adds e.g. optimizer state for resuming."""
    from stereo_depth_ros import __version__

    meta = dict(meta or {})
    meta.setdefault("date", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    meta.setdefault("package_version", __version__)
    meta.setdefault("command", " ".join(sys.argv))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": dict(config),
        "state_dict": state,
        "meta": meta,
        **extra,
    }


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path_or_name: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint without executing code; CheckpointError on any problem."""
    path = resolve_checkpoint(path_or_name)
    if not path.is_file():
        hint = (
            " (no shipped weights by that name: the default stereo model ships only once one beats"
            " SGBM in the acceptance check; model 'fast_cpu_candidate' is the best trained so far,"
            " or train one with `stereo-depth train`)"
            if str(path_or_name) in NAMED_CHECKPOINTS
            else ""
        )
        raise CheckpointError(f"checkpoint {path} does not exist{hint}")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes are not for the user
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # refused pickle, truncated zip, not a torch file, I/O error...
        raise _refused(path, exc) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a stereo_depth_ros checkpoint (missing format tag {FORMAT!r})")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {ckpt['format_version']}, newer than this package"
        )
    for key, kind in (("arch", str), ("config", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path}: missing or malformed {key!r}")
    if ckpt["arch"] not in model_names():
        raise CheckpointError(
            f"{path}: unknown architecture {ckpt['arch']!r} (this package has {', '.join(model_names())})"
        )
    ckpt["path"] = str(path)
    return ckpt


def _refused(path: Path, exc: BaseException) -> CheckpointError:
    """Why torch.load(weights_only=True) refused ``path``, in the package's words: torch's own
    text advises loading the file unsafely or allow-listing its classes, which the package
    never does, so only facts (the class named, the pickle instruction) are taken from it."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return CheckpointError(
            f"refusing checkpoint {path}: it holds a pickled object ({found.group(1)}) that could execute "
            "code when loaded; weights files are read as plain tensors, numbers, strings, lists and dicts "
            "only, never unpickled unsafely")
    operand = re.search(r"Unsupported operand (\d+)", text)
    if operand:
        return CheckpointError(
            f"refusing checkpoint {path}: corrupt or truncated, or a pickle of more than plain tensors and "
            f"containers (it uses pickle instruction {operand.group(1)}, which the safe loader does not run)")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not first or _ADVICE.search(first):
        first = type(exc).__name__
    elif len(first) < 20:  # KeyError('101') says only "101"
        first = f"{type(exc).__name__} {first}"
    return CheckpointError(f"refusing checkpoint {path}: cannot read it (corrupt or truncated?): {first}")


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Build the checkpoint's architecture and load its weights strictly; CheckpointError on mismatch."""
    path = ckpt.get("path", "<checkpoint>")
    try:
        model = build_model(ckpt["arch"], **ckpt["config"])
    except (UnknownModelError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot build {ckpt['arch']!r} from its config: {exc}") from None
    state = ckpt["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match architecture {ckpt['arch']!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[key].shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(
                f"{path}: weight {key!r} has shape {shape}, architecture expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    return model


def select_device(device: str | torch.device = "auto", strict: bool = False) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without CUDA -> cpu with a warning (error if strict)."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        if strict:
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        log.warning("device %r requested but CUDA is not available; running on the CPU", device)
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None


def select_precision(precision: str, device: torch.device) -> str:
    """'auto' -> fp16 autocast on CUDA, fp32 on CPU."""
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type == "cpu":
        log.warning("fp16 on the CPU is slow and not supported by all ops; using bf16 autocast instead")
        return "bf16"
    return precision


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv (inside an nn.Sequential) into the conv.

    Inference only (eval statistics); the same outputs up to float rounding, fewer passes over
    memory, which is what dominates the small convs of these networks on a CPU.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d):
                transpose = isinstance(conv, nn.ConvTranspose2d)
                module._modules[a] = fuse_conv_bn_eval(conv, bn, transpose=transpose)
                module._modules[b] = nn.Identity()
    return model


class StereoEstimator:
    """A stereo network ready for inference on one device at one precision.

    ``est(left, right)`` takes (B, 3, H, W) or (3, H, W) float tensors in [0, 1] (any device)
    and returns ``{"disparity": (B, H, W) float32, "confidence": (B, H, W) float32 | None}``
    on ``est.device``. ``predict_numpy`` takes and returns numpy arrays. ``est.model`` is an
    inference copy with BatchNorm folded into the convs (``fuse=False`` keeps it as given):
    save checkpoints from the training model, not from it.
    """

    def __init__(
        self,
        model: nn.Module,
        arch: str,
        config: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        strict: bool = False,
        fuse: bool = True,
    ) -> None:
        self.device = select_device(device, strict)
        self.precision = select_precision(precision, self.device)
        self.arch = arch
        self.config = dict(config or {})
        self.meta = dict(meta or {})
        # BN folding changes the module tree: done on a copy so the caller's model is untouched
        self.model = (fuse_batchnorm(copy.deepcopy(model)) if fuse else model).to(self.device).eval()
        self.max_disparity = float(getattr(model, "max_disparity", self.config.get("max_disparity", 0)))

    @classmethod
    def from_checkpoint(
        cls,
        path_or_name: str | Path = "default",
        device: str | torch.device = "auto",
        precision: str = "auto",
        strict: bool = False,
    ) -> StereoEstimator:
        ckpt = load_checkpoint(path_or_name)
        if ckpt["arch"] in NOT_STEREO:
            raise CheckpointError(f"{ckpt['path']} holds {NOT_STEREO[ckpt['arch']]} ({ckpt['arch']!r}), "
                                  "not a stereo network")
        model = model_from_checkpoint(ckpt)
        meta = dict(ckpt["meta"], checkpoint=ckpt["path"])
        return cls(model, ckpt["arch"], ckpt["config"], meta, device, precision, strict)

    @classmethod
    def untrained(
        cls,
        arch: str = "fast",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        seed: int = 0,
        **config: Any,
    ) -> StereoEstimator:
        """A randomly initialised network (tests, benchmarks); its output is meaningless."""
        torch.manual_seed(seed)
        return cls(build_model(arch, **config), arch, config, {"untrained": True}, device, precision)

    def _autocast(self):
        if self.precision in _DTYPES:
            return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])
        return torch.autocast(self.device.type, enabled=False)

    @torch.inference_mode()
    def __call__(
        self, left: torch.Tensor, right: torch.Tensor, search_range: float | None = None
    ) -> dict[str, torch.Tensor | None]:
        """``search_range``: disparities to search, for networks that take one (``guided``);
        others ignore it (their range is fixed: :attr:`max_disparity`)."""
        squeeze = left.dim() == 3
        if squeeze:
            left, right = left.unsqueeze(0), right.unsqueeze(0)
        if left.dim() != 4 or left.shape[1] != 3 or left.shape != right.shape:
            raise ValueError(
                f"expected left/right of equal shape (B, 3, H, W) or (3, H, W), got "
                f"{tuple(left.shape)} and {tuple(right.shape)}"
            )
        left = left.to(self.device, torch.float32, non_blocking=True)
        right = right.to(self.device, torch.float32, non_blocking=True)
        extra = {}
        if search_range and getattr(self.model, "takes_search_range", False):
            extra["max_disparity"] = float(search_range)
        with self._autocast():
            out = self.model(left, right, **extra)
        disp = out["disparity"].float()
        conf = out.get("confidence")
        conf = conf.float() if conf is not None else None
        if squeeze:
            disp = disp[0]
            conf = conf[0] if conf is not None else None
        return {"disparity": disp, "confidence": conf}

    def predict_numpy(
        self, left_rgb: np.ndarray, right_rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 RGB pair -> (disparity (H, W) float32 px, confidence (H, W) float32 or None)."""
        left = image_to_tensor(left_rgb, "left")
        right = image_to_tensor(right_rgb, "right")
        if left.shape != right.shape:
            raise ValueError(
                f"left {tuple(left_rgb.shape)} and right {tuple(right_rgb.shape)} differ in size"
            )
        out = self(left, right)
        conf = out["confidence"]
        return out["disparity"].cpu().numpy(), (conf.cpu().numpy() if conf is not None else None)

    def describe(self) -> str:
        steps = self.meta.get("steps")
        return (
            f"{self.arch} on {self.device} ({self.precision})"
            + (f", {steps} training steps" if steps is not None else "")
            + (" [untrained]" if self.meta.get("untrained") else "")
        )


def image_to_tensor(image: np.ndarray, what: str = "image") -> torch.Tensor:
    """(H, W, 3) uint8 RGB (or float in [0, 1]) -> (3, H, W) float32 tensor in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what} image must be (H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)
    else:
        raise ValueError(f"{what} image must be uint8 or float, got {arr.dtype}")
    return t
