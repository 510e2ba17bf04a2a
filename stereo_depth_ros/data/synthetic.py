"""Synthetic rectified stereo pairs with exact ground truth (FlyingThings-style scenes).

Random analytic primitives (boxes, spheres, cylinders, quads, thin poles and wires) in
front of a far textured wall and above a ground plane are ray cast from both camera centres
of a rectified pinhole rig (left at the origin, right at +baseline along x, same
intrinsics). Every surface point carries a texture coordinate in its object's own frame, so
both views sample the same texture at the same 3D point: the right image warped by the
ground-truth disparity reproduces the left image wherever the point is visible in both.

    rig = StereoRig(width=640, height=480, fx=400.0, fy=400.0, cx=319.5, cy=239.5, baseline=0.12)
    s = render_random(seed, rig, max_disparity=128.0, photometric=True)

Disparity = fx * baseline / Z (cx_right == cx), > 0 everywhere, <= max_disparity.
Instance ids: 0 background (far wall, side walls, ceiling), 1 ground plane, 2.. objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..geometry import StereoGeometry
from . import raycast, textures
from .photometric import apply_photometric, to_uint8
from .raycast import Shape, axis_rotation, random_rotation

# Bump whenever the images or ground truth for a given seed change (on-disk caches key on it).
GENERATOR_VERSION = 13

WALL_ID = 0
GROUND_ID = 1
FIRST_OBJECT_ID = 2
_OCCLUSION_EPS = 1e-3  # relative distance along the right-camera ray that still counts as "at P"


@dataclass(frozen=True)
class StereoRig:
    """A rectified pinhole stereo pair: shared intrinsics, right camera at +baseline along x."""

    width: int = 640
    height: int = 480
    fx: float = 400.0
    fy: float = 400.0
    cx: float = 319.5
    cy: float = 239.5
    baseline: float = 0.12

    def __post_init__(self) -> None:
        if int(self.width) < 1 or int(self.height) < 1:
            raise ValueError(f"rig image size must be positive, got {self.width}x{self.height}")
        for name in ("fx", "fy", "baseline"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"rig {name} must be a positive number, got {value}")
        for name in ("cx", "cy"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"rig {name} must be finite, got {getattr(self, name)}")

    @classmethod
    def for_size(cls, width: int, height: int, fx: float | None = None,
                 baseline: float = 0.12) -> StereoRig:
        """A rig for ``width`` x ``height`` with a ~77 degree horizontal field of view by default."""
        f = 0.625 * width if fx is None else float(fx)
        return cls(int(width), int(height), f, f, (width - 1) / 2.0, (height - 1) / 2.0, baseline)

    def geometry(self) -> StereoGeometry:
        return StereoGeometry(fx=self.fx, fy=self.fy, cx=self.cx, cy=self.cy, cx_right=self.cx,
                              baseline=self.baseline, width=self.width, height=self.height)

    def projections(self) -> tuple[list[float], list[float]]:
        """camera_info.P of the left and right cameras (row-major 3x4)."""
        left = [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        right = list(left)
        right[3] = -self.fx * self.baseline
        return left, right

    def scaled(self, factor: float) -> StereoRig:
        return StereoRig(round(self.width * factor), round(self.height * factor),
                         self.fx * factor, self.fy * factor, (self.cx + 0.5) * factor - 0.5,
                         (self.cy + 0.5) * factor - 0.5, self.baseline)


@dataclass
class StereoSample:
    """One rendered pair with exact left-view ground truth."""

    left: np.ndarray        # (H, W, 3) uint8 RGB
    right: np.ndarray       # (H, W, 3) uint8 RGB
    disparity: np.ndarray   # (H, W) float32 px, left view, > 0 everywhere
    depth: np.ndarray       # (H, W) float32 m
    occlusion: np.ndarray   # (H, W) bool, True = left pixel not visible in the right image
    instances: np.ndarray   # (H, W) int32: 0 background walls, 1 ground, 2.. objects
    rig: StereoRig


@dataclass
class Material:
    """A mip-mapped texture placed on a surface at ``texels_per_metre``.

    ``uv_transform`` (2x2) rotates/stretches the surface coordinates first; ``color_matrix``
    (3x3), ``contrast`` and ``tint`` recolour the sampled texture, so one bank texture gives
    many different-looking materials. ``fixed_level`` (None = per pixel) samples one mip
    level for a whole small object. An optional grey *detail* layer, ``detail_scale`` times
    finer, modulates the colour by up to ``detail_strength``: close-up surfaces keep fine
    texture instead of turning into a blur of magnified texels.
    """

    levels: list[np.ndarray]
    texels_per_metre: float
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    tint: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    uv_transform: np.ndarray | None = None
    color_matrix: np.ndarray | None = None
    contrast: float = 1.0
    color_bias: float = 0.0
    fixed_level: float | None = None
    detail: list[np.ndarray] | None = None
    detail_scale: float = 8.0
    detail_strength: float = 0.0
    specular: float = 0.0     # strength of glossy highlights (photometric renders only)
    shininess: float = 20.0   # Blinn-Phong exponent

    @classmethod
    def from_texture(cls, texture: np.ndarray, texels_per_metre: float,
                     rng: np.random.Generator | None = None) -> Material:
        offset = (rng.uniform(0, 1000, 2) if rng is not None else np.zeros(2)).astype(np.float32)
        return cls(textures.mip_pyramid(texture), float(texels_per_metre), offset)

    def sample(self, uv: np.ndarray, footprint_m: np.ndarray) -> np.ndarray:
        """Colour (N, 3) float32 at surface coordinates ``uv`` (N, 2) in metres.

        ``footprint_m`` is the size of a pixel on the surface (metres) and picks the level.
        """
        if self.uv_transform is not None:
            m = self.uv_transform.astype(np.float32)
            uv = np.stack([uv[:, 0] * m[0, 0] + uv[:, 1] * m[0, 1],
                           uv[:, 0] * m[1, 0] + uv[:, 1] * m[1, 1]], 1)
        tpm = np.float32(self.texels_per_metre)
        color = _sample_mipmapped(self.levels, (uv + self.offset) * tpm, footprint_m * tpm,
                                  self.fixed_level)
        if self.levels[0].dtype == np.uint8:
            color *= np.float32(1 / 255)
        if self.contrast != 1.0:
            color = (color - np.float32(0.5)) * np.float32(self.contrast) + np.float32(0.5)
        if self.color_matrix is not None:
            c = self.color_matrix.astype(np.float32)
            color = np.stack([color[:, 0] * c[k, 0] + color[:, 1] * c[k, 1]
                              + color[:, 2] * c[k, 2] for k in range(3)], 1)
            if self.color_bias:
                color += np.float32(self.color_bias)
        if self.detail is not None and self.detail_strength > 0:
            dt = tpm * np.float32(self.detail_scale)
            fine_level = (None if self.fixed_level is None
                          else self.fixed_level + math.log2(self.detail_scale))
            fine = _sample_mipmapped(self.detail, (uv * np.float32(1.37) + self.offset[::-1]) * dt,
                                     footprint_m * dt, fine_level) * np.float32(1 / 255)
            color = color * (1 + np.float32(2 * self.detail_strength) * (fine - np.float32(0.5)))
        return np.clip(color, 0, 1) * self.tint


def _sample_mipmapped(levels: list[np.ndarray], q: np.ndarray, texels_per_pixel: np.ndarray,
                      fixed_level: float | None = None) -> np.ndarray:
    """Trilinear lookup at level-0 texel coordinates ``q`` (N, 2) with a per-pixel footprint
    (or one ``fixed_level`` for all)."""
    if fixed_level is not None:
        lvl = int(np.clip(np.floor(fixed_level), 0, len(levels) - 1))
        f = np.float32(np.clip(fixed_level - lvl, 0, 1))
        out = _bilinear(levels[lvl], q / np.float32(2.0**lvl)).astype(np.float32)
        if lvl + 1 < len(levels) and f > 0:
            hi = _bilinear(levels[lvl + 1], q / np.float32(2.0 ** (lvl + 1)))
            out = out * (1 - f) + hi * f
        return out
    level = np.log2(np.maximum(texels_per_pixel, np.float32(1e-6)))
    level = np.clip(level, 0, len(levels) - 1).astype(np.float32)
    base = np.minimum(np.floor(level).astype(np.int64), len(levels) - 1)
    frac = (level - base)[:, None]
    out = np.empty((len(q), _channels(levels[0])), np.float32)
    present = np.nonzero(np.bincount(base, minlength=len(levels)))[0]
    for lvl in present:
        sel = np.nonzero(base == lvl)[0] if len(present) > 1 else slice(None)
        qs = q[sel]
        lo = _bilinear(levels[lvl], qs / np.float32(2.0**lvl)).astype(np.float32)
        if lvl + 1 < len(levels):
            hi = _bilinear(levels[lvl + 1], qs / np.float32(2.0 ** (lvl + 1)))
            f = frac[sel]
            lo = lo * (1 - f) + hi * f
        out[sel] = lo
    return out


def _bilinear(tex: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bilinear texel lookup at continuous texel coordinates q (N, 2), mirrored repeat.

    Mirrored repeat tiles any texture without a seam. Coordinates are folded into one
    mirror period first (cv2.remap takes 16-bit coordinates), then OpenCV's REFLECT border
    does the mirroring.
    """
    h, w = tex.shape[:2]
    n = len(q)
    cols = 1024
    rows = max(1, -(-n // cols))
    grid = np.zeros((rows * cols, 2), np.float32)
    grid[:n, 0] = np.mod(q[:, 0], np.float32(2 * w)) - np.float32(0.5)
    grid[:n, 1] = np.mod(q[:, 1], np.float32(2 * h)) - np.float32(0.5)
    out = cv2.remap(tex, grid.reshape(rows, cols, 2), None, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1, _channels(tex))[:n]


def _channels(tex: np.ndarray) -> int:
    return tex.shape[2] if tex.ndim == 3 else 1


@dataclass
class SceneObject:
    shape: Shape
    material: Material
    instance: int


@dataclass
class Scene:
    """Objects and lighting: ambient + a directional light (unit vector towards it, casting
    hard shadows when ``shadows``) + an optional unshadowed point light at ``point_light``
    (weight ``point_weight``, brightness falling off with distance past ``point_range``).
    All lighting depends only on the 3D point, so both views agree."""

    objects: list[SceneObject]
    light: np.ndarray = field(default_factory=lambda: np.array([0.3, -0.8, -0.5]))
    ambient: float = 0.5
    seed: int = 0
    shadows: bool = True
    point_light: np.ndarray | None = None
    point_weight: float = 0.0
    point_range: float = 1.0
    exposure_target: float = 0.85  # 97th-percentile brightness after auto exposure

    def __post_init__(self) -> None:
        self.light = np.asarray(self.light, np.float32) / np.linalg.norm(self.light)


# --------------------------------------------------------------------------- ray casting

_DIRS_CACHE: dict[StereoRig, tuple[np.ndarray, np.ndarray]] = {}


def _pixel_dirs(rig: StereoRig) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 x and y components of the camera rays ((u-cx)/fx, (v-cy)/fy, 1).

    The z component is 1, so the ray parameter of a hit is its depth Z.
    """
    dirs = _DIRS_CACHE.get(rig)
    if dirs is None:
        v, u = np.mgrid[0:rig.height, 0:rig.width].astype(np.float32)
        dirs = ((u - np.float32(rig.cx)) / np.float32(rig.fx),
                (v - np.float32(rig.cy)) / np.float32(rig.fy))
        if len(_DIRS_CACHE) > 8:
            _DIRS_CACHE.clear()
        _DIRS_CACHE[rig] = dirs
    return dirs


def _screen_rect(shape: Shape, origin: np.ndarray, rig: StereoRig
                 ) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (u0, u1, v0, v1) that can see ``shape`` from ``origin``; None if none."""
    full = (0, rig.width, 0, rig.height)
    if not shape.bounded:
        return full
    ext = shape.world_extent()
    c = shape.center - origin
    z0, z1 = c[2] - ext[2], c[2] + ext[2]
    if z1 <= 1e-6:
        return None
    if z0 <= 1e-3:
        return full
    rect = []
    for axis, f, pc, size in ((0, rig.fx, rig.cx, rig.width), (1, rig.fy, rig.cy, rig.height)):
        ratios = [(c[axis] + s * ext[axis]) / z for s in (-1, 1) for z in (z0, z1)]
        lo = max(0, math.floor(f * min(ratios) + pc) - 1)
        hi = min(size, math.ceil(f * max(ratios) + pc) + 2)
        if lo >= hi:
            return None
        rect.append((lo, hi))
    return rect[0][0], rect[0][1], rect[1][0], rect[1][1]


def _cast(objects: list[SceneObject], origin: np.ndarray, rig: StereoRig
          ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit per pixel: depth (H, W) float32 (inf = nothing) and object index (-1)."""
    dx, dy = _pixel_dirs(rig)
    tbuf = np.full((rig.height, rig.width), np.inf, np.float32)
    ibuf = np.full((rig.height, rig.width), -1, np.int32)
    for k, obj in enumerate(objects):
        rect = _screen_rect(obj.shape, origin, rig)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        t = raycast.intersect(obj.shape, origin, dx[v0:v1, u0:u1], dy[v0:v1, u0:u1])
        tv = tbuf[v0:v1, u0:u1]
        iv = ibuf[v0:v1, u0:u1]
        closer = t < tv
        tv[closer] = t[closer]
        iv[closer] = k
    return tbuf, ibuf


def _trace(objects: list[SceneObject], origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
           u: np.ndarray, v: np.ndarray, rig: StereoRig) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit for a list of camera rays through image points (u, v); like _cast."""
    t = np.full(len(dx), np.inf, np.float32)
    idx = np.full(len(dx), -1, np.int32)
    for k, obj in enumerate(objects):
        rect = _screen_rect(obj.shape, origin, rig)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        sel = np.nonzero((u >= u0 - 1) & (u < u1 + 1) & (v >= v0 - 1) & (v < v1 + 1))[0]
        if len(sel) == 0:
            continue
        tk = raycast.intersect(obj.shape, origin, dx[sel], dy[sel])
        closer = tk < t[sel]
        t[sel[closer]] = tk[closer]
        idx[sel[closer]] = k
    return t, idx


def _shade_rays(scene: Scene, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                z: np.ndarray, index: np.ndarray, fx: float, specular: bool = False
                ) -> np.ndarray:
    """Shaded texture colour (N, 3) float32 for camera rays that hit object ``index`` at
    depth ``z`` (rays without a hit stay black).

    Everything that decides the Lambertian colour (texture coordinate, mip level, normal
    orientation, shading) depends only on the 3D point and the *left* camera, so both views
    agree exactly. ``specular`` adds view-dependent highlights of glossy materials (seen
    from ``origin``), which differ between the views as on real shiny surfaces.
    """
    order = np.argsort(index, kind="stable")  # rays grouped by object, one pass
    counts = np.bincount(index + 1, minlength=len(scene.objects) + 1)
    z_all = z[order]
    n_rays = len(order)
    points = np.stack([dx[order] * z_all, dy[order] * z_all, z_all], 1) + origin.astype(np.float32)
    albedo = np.zeros((n_rays, 3), np.float32)
    normals = np.zeros((n_rays, 3), np.float32)
    gloss = np.zeros(n_rays, np.float32) if specular else None
    start = int(counts[0])
    first = start
    for k, obj in enumerate(scene.objects):
        stop = start + int(counts[k + 1])
        if stop == start:
            continue
        sl = slice(start, stop)
        start = stop
        pts = points[sl]
        uv, normal = raycast.surface(obj.shape, pts)
        dist = np.sqrt(np.einsum("ij,ij->i", pts, pts))
        facing = np.einsum("ij,ij->i", normal, pts) / np.maximum(dist, np.float32(1e-9))
        if obj.shape.kind in ("plane", "quad"):  # two-sided: shade the side the left camera sees
            normal = np.where(facing[:, None] > 0, -normal, normal)
        cos = np.abs(facing)
        footprint = z_all[sl] / np.float32(fx) / np.sqrt(np.maximum(cos, np.float32(0.05)))
        albedo[sl] = obj.material.sample(uv, footprint)
        normals[sl] = normal
        if gloss is not None and obj.material.specular > 0:
            view = np.float32(origin) - pts
            half = view / np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-9)
            half = half + scene.light
            half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
            cos_h = np.maximum(np.einsum("ij,ij->i", normal, half), 0)
            gloss[sl] = np.float32(obj.material.specular) * cos_h ** np.float32(
                obj.material.shininess)
    hit = slice(first, n_rays)
    shade, sunlit = _lighting(scene, points[hit], normals[hit], z_all[hit])
    colors = np.zeros((n_rays, 3), np.float32)
    colors[hit] = albedo[hit] * shade[:, None]
    if gloss is not None:
        strength = np.float32((1 - scene.ambient) * (1 - scene.point_weight))
        colors[hit] += (gloss[hit] * sunlit * strength)[:, None]
    out = np.empty_like(colors)
    out[order] = colors
    return out


def _lighting(scene: Scene, points: np.ndarray, normals: np.ndarray, z: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Irradiance factor per point (ambient + shadowed directional + point light) and
    whether the directional light reaches the point (float 0/1)."""
    lam = np.maximum(normals @ scene.light, np.float32(0))
    if scene.shadows:
        lit = np.nonzero(lam > 0)[0]
        if len(lit):
            # Start just off the surface so a point does not shadow itself.
            offset = (z[lit] * np.float32(2e-4) + np.float32(1e-5))[:, None]
            starts = points[lit] + normals[lit] * offset
            blocked = _shadow_rays(scene, starts)
            lam[lit[blocked]] = 0
    direct = lam * np.float32(1 - scene.point_weight)
    if scene.point_light is not None and scene.point_weight > 0:
        to_light = scene.point_light.astype(np.float32) - points
        dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
        cos = np.maximum(np.einsum("ij,ij->i", normals, to_light) / np.maximum(dist, 1e-6), 0)
        falloff = np.minimum((np.float32(scene.point_range) / np.maximum(dist, 1e-6)) ** 2, 2.0)
        direct = direct + np.float32(scene.point_weight) * cos * falloff
    sunlit = (lam > 0).astype(np.float32)
    return np.float32(scene.ambient) + np.float32(1 - scene.ambient) * direct, sunlit


def _shadow_rays(scene: Scene, starts: np.ndarray) -> np.ndarray:
    """True where the ray from each start point towards the directional light hits anything.

    Culled in light space: points are projected on the plane across the light direction and
    only those inside an object's projected bounding square, and not in front of it (towards
    the light), are intersected with it.
    """
    light = scene.light.astype(np.float64)
    e1 = np.cross(light, [0.0, 0.0, 1.0] if abs(light[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(light, e1)
    a = starts @ e1.astype(np.float32)
    b = starts @ e2.astype(np.float32)
    h = starts @ light.astype(np.float32)
    blocked = np.zeros(len(starts), bool)
    lx, ly, lz = (np.float32(v) for v in light)
    for obj in scene.objects:
        shape = obj.shape
        if shape.bounded:
            radius = float(np.linalg.norm(shape.world_extent()))
            c = shape.center
            sel = np.nonzero(~blocked & (np.abs(a - c @ e1) <= radius)
                             & (np.abs(b - c @ e2) <= radius) & (h <= c @ light + radius))[0]
        else:
            sel = np.nonzero(~blocked)[0]
        if len(sel) == 0:
            continue
        origin = (starts[sel, 0], starts[sel, 1], starts[sel, 2])
        t = raycast.intersect(shape, origin, lx, ly, lz)
        blocked[sel[np.isfinite(t)]] = True
    return blocked


def _shade(scene: Scene, origin: np.ndarray, depth: np.ndarray, index: np.ndarray,
           rig: StereoRig, specular: bool = False) -> np.ndarray:
    """(H, W, 3) float32 colour of every pixel centre."""
    dx, dy = _pixel_dirs(rig)
    colors = _shade_rays(scene, origin, dx.ravel(), dy.ravel(), depth.ravel(), index.ravel(),
                         rig.fx, specular)
    return colors.reshape(rig.height, rig.width, 3)


# Rotated-grid 4x supersampling pattern (pixel units, around the pixel centre).
_AA_OFFSETS = np.array([[-0.125, -0.375], [0.375, -0.125], [0.125, 0.375], [-0.375, 0.125]],
                       np.float32)


def _antialias_edges(scene: Scene, origin: np.ndarray, index: np.ndarray, img: np.ndarray,
                     rig: StereoRig, specular: bool = False) -> None:
    """Replace pixels on object boundaries by the mean of 4 sub-pixel samples, in place.

    A real camera integrates over each pixel, so boundary pixels mix foreground and
    background; point-sampled edges would be unnaturally hard. Ground truth stays the
    pixel centre's.
    """
    edge = np.zeros(index.shape, bool)
    dh = index[:, 1:] != index[:, :-1]
    dv = index[1:, :] != index[:-1, :]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    ys, xs = np.nonzero(edge)
    if len(ys) == 0:
        return
    u = (xs[None, :].astype(np.float32) + _AA_OFFSETS[:, :1]).ravel()
    v = (ys[None, :].astype(np.float32) + _AA_OFFSETS[:, 1:]).ravel()
    dx = (u - np.float32(rig.cx)) / np.float32(rig.fx)
    dy = (v - np.float32(rig.cy)) / np.float32(rig.fy)
    t, idx = _trace(scene.objects, origin, dx, dy, u, v, rig)
    colors = _shade_rays(scene, origin, dx, dy, t, idx, rig.fx, specular)
    img[ys, xs] = colors.reshape(len(_AA_OFFSETS), len(ys), 3).mean(axis=0)


def _occlusion(scene: Scene, depth: np.ndarray, disparity: np.ndarray, rig: StereoRig
               ) -> np.ndarray:
    """True where the left pixel's 3D point is out of the right view or hidden from it.

    Exact: a shadow ray from the right camera centre to the point is tested against every
    primitive (culled by each primitive's rectangle in the right image).
    """
    dx, dy = _pixel_dirs(rig)
    u = np.arange(rig.width, dtype=np.float32)[None, :]
    xr = u - disparity
    occluded = xr < 0
    right_origin = np.array([rig.baseline, 0.0, 0.0])
    # Rays from the right camera centre that reach the left pixel's point at t = 1.
    sx = depth * dx - np.float32(rig.baseline)
    sy = depth * dy
    limit = np.float32(1 - _OCCLUSION_EPS)
    for obj in scene.objects:
        rect = _screen_rect(obj.shape, right_origin, rig)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        rows = slice(v0, v1)
        cand = ~occluded[rows] & (xr[rows] >= u0 - 1) & (xr[rows] < u1 + 1)
        ys, xs = np.nonzero(cand)
        if len(ys) == 0:
            continue
        ys = ys + v0
        t = raycast.intersect(obj.shape, right_origin, sx[ys, xs], sy[ys, xs], depth[ys, xs])
        hidden = t < limit
        occluded[ys[hidden], xs[hidden]] = True
    return occluded


def render(scene: Scene, rig: StereoRig, photometric: bool = False,
           rng: np.random.Generator | None = None, antialias: bool = True) -> StereoSample:
    """Ray cast ``scene`` from both cameras of ``rig``; exact disparity, depth and occlusion.

    ``photometric`` adds glossy highlights (view dependent) and independent camera-like
    gain/gamma/noise/blur to each view (drawn from ``rng``, default seeded by the scene
    seed); the ground truth is unaffected. Without it the views agree exactly.
    ``antialias`` supersamples pixels on object boundaries (images only).
    """
    left_origin = np.zeros(3)
    right_origin = np.array([rig.baseline, 0.0, 0.0])
    depth, index_l = _cast(scene.objects, left_origin, rig)
    if not np.isfinite(depth).all():
        bad = int((~np.isfinite(depth)).sum())
        raise ValueError(f"scene leaves {bad} pixels empty: add a background plane that covers "
                         "the whole view")
    depth_r, index_r = _cast(scene.objects, right_origin, rig)
    # Glossy highlights are view dependent: only with photometric effects (photometric=False
    # keeps the two views exactly consistent).
    left = _shade(scene, left_origin, depth, index_l, rig, photometric)
    right = _shade(scene, right_origin, depth_r, index_r, rig, photometric)
    if antialias:
        _antialias_edges(scene, left_origin, index_l, left, rig, photometric)
        _antialias_edges(scene, right_origin, index_r, right, rig, photometric)
    # Auto exposure, the same gain for both views (as a synced stereo camera has): bright
    # parts of the left view land near the top of the range instead of the scene being dim.
    bright = float(np.percentile(left[::4, ::4].mean(axis=2), 97))
    gain = np.float32(np.clip(scene.exposure_target / max(bright, 1e-3), 0.5, 4.0))
    left *= gain
    right *= gain
    disparity = (np.float32(rig.fx * rig.baseline) / depth).astype(np.float32)
    occlusion = _occlusion(scene, depth, disparity, rig)
    ids = np.array([o.instance for o in scene.objects], np.int32)
    instances = ids[index_l]
    if photometric:
        rng = rng if rng is not None else np.random.default_rng([scene.seed, 1])
        left, right = apply_photometric(left, right, rng)
    return StereoSample(to_uint8(left), to_uint8(right), disparity, depth, occlusion,
                        instances, rig)


# --------------------------------------------------------------------------- scenes

def _facing_camera() -> np.ndarray:
    """Rotation whose local z axis (a plane's normal) points back at the camera."""
    return axis_rotation(np.array([0.0, 1.0, 0.0]), math.pi)


def _texture_scale(rng: np.random.Generator, fx: float, depth: float) -> float:
    """Texels per metre so one texel spans ~0.3..2.5 pixels at ``depth``."""
    pixels_per_texel = math.exp(rng.uniform(math.log(0.3), math.log(2.5)))
    return fx / (depth * pixels_per_texel)


def _random_color_transform(rng: np.random.Generator, mat: Material) -> None:
    """Recolour a (bank) texture: channel mixing/permutation, inversion, contrast, tint."""
    m = np.eye(3)
    if rng.random() < 0.5:
        m = m[rng.permutation(3)]
    if rng.random() < 0.6:
        mix = rng.uniform(0, 0.5)
        m = (1 - mix) * m + mix * rng.dirichlet(np.ones(3), 3)
    if rng.random() < 0.3:  # towards grey
        g = rng.uniform(0.3, 1.0)
        m = (1 - g) * m + g * np.full((3, 3), 1 / 3)
    if rng.random() < 0.15:  # inverted
        m = -m
        mat.color_bias = 1.0  # rows of m sum to 1, so this is 1 - colour
    mat.color_matrix = m.astype(np.float32)
    mat.contrast = float(math.exp(rng.uniform(math.log(0.4), math.log(1.6))))
    mat.tint = (rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)


def _material(rng: np.random.Generator, fx: float, depth: float, size: int = 256,
              small: bool = False) -> Material:
    """A random material; texel size set for ``depth`` so texture detail matches the pixels.

    ``small`` objects (not the wall or ground) sample one mip level chosen from ``depth``.
    """
    bank_index = int(rng.integers(1 << 30))
    levels = textures.bank_texture(bank_index, size)
    tpm = _texture_scale(rng, fx, depth)
    mat = Material(levels, tpm, rng.uniform(0, 1000, 2).astype(np.float32))
    angle = rng.uniform(0, 2 * math.pi)
    stretch = math.exp(rng.normal(0, 0.25))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mat.uv_transform = (np.diag([stretch, 1 / stretch]) @ rot).astype(np.float32)
    _random_color_transform(rng, mat)
    if small:
        mat.fixed_level = float(max(0.0, math.log2(tpm * depth / fx)))
    # Gloss comes from its own stream (keyed by a draw already made) so adding it left every
    # other random choice, and so the scenes of earlier versions, as they were.
    gloss_rng = np.random.default_rng([bank_index, 7])
    if gloss_rng.random() < 0.25:
        mat.specular = float(gloss_rng.uniform(0.1, 0.6))
        mat.shininess = float(math.exp(gloss_rng.uniform(math.log(8), math.log(120))))
    if rng.random() < 0.7:
        mat.detail = textures.bank_detail(int(rng.integers(1 << 30)))
        mat.detail_scale = float(rng.uniform(4, 16))
        mat.detail_strength = float(rng.uniform(0.05, 0.35))
    return mat


def fronto_parallel_plane_scene(depth_m: float, seed: int = 0) -> Scene:
    """A single textured plane facing the camera at ``depth_m``: constant disparity fx*B/Z."""
    if not depth_m > 0:
        raise ValueError(f"plane depth must be positive, got {depth_m}")
    rng = np.random.default_rng(seed)
    wall = Shape("plane", [0, 0, depth_m], _facing_camera(), [0, 0, 0])
    return Scene([SceneObject(wall, _material(rng, 400.0, depth_m), WALL_ID)], seed=seed,
                 light=np.array([0.0, 0.0, -1.0]), ambient=0.6)


def step_scene(near_m: float, far_m: float, seed: int = 0) -> Scene:
    """A near plane over the right half of the view (x > 0) in front of a far wall.

    Left of the step, a band of the far wall (near - far disparity wide) is occluded in the
    right view.
    """
    if not 0 < near_m < far_m:
        raise ValueError(f"need 0 < near ({near_m}) < far ({far_m})")
    rng = np.random.default_rng(seed)
    wall = Shape("plane", [0, 0, far_m], _facing_camera(), [0, 0, 0])
    big = 20.0 * near_m
    near = Shape("quad", [big, 0, near_m], _facing_camera(), [big, big, 0])
    return Scene([SceneObject(wall, _material(rng, 400.0, far_m), WALL_ID),
                  SceneObject(near, _material(rng, 400.0, near_m), FIRST_OBJECT_ID)],
                 seed=seed, light=np.array([0.0, 0.0, -1.0]), ambient=0.6)


def _corner_rays(rig: StereoRig, bottom_only: bool = False) -> np.ndarray:
    us = (0.0, rig.width - 1.0)
    vs = (rig.height - 1.0,) if bottom_only else (0.0, rig.height - 1.0)
    return np.array([[(u - rig.cx) / rig.fx, (v - rig.cy) / rig.fy, 1.0] for u in us for v in vs])


def _plane_depths(center: np.ndarray, rotation: np.ndarray, rays: np.ndarray) -> np.ndarray:
    n = rotation[:, 2]
    with np.errstate(divide="ignore"):
        return (n @ center) / (rays @ n)


def _random_wall(rng: np.random.Generator, rig: StereoRig, z_near: float, d_wall: float
                 ) -> Shape:
    zw = rig.fx * rig.baseline / d_wall
    center = np.array([0.0, 0.0, zw])
    rot = _facing_camera()
    if rng.random() < 0.5:
        tilt = (axis_rotation(np.array([0.0, 1.0, 0.0]), rng.uniform(-0.4, 0.4))
                @ axis_rotation(np.array([1.0, 0.0, 0.0]), rng.uniform(-0.2, 0.2)))
        depths = _plane_depths(center, tilt @ rot, _corner_rays(rig))
        if np.all(depths > 2 * z_near) and np.all(np.isfinite(depths)):
            rot = tilt @ rot
    return Shape("plane", center, rot, [0, 0, 0])


def _random_ground(rng: np.random.Generator, rig: StereoRig, z_near: float) -> Shape | None:
    up = np.column_stack([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # local z = world up (-y)
    rot = up
    if rng.random() < 0.6:
        rot = (axis_rotation(np.array([1.0, 0, 0]), rng.uniform(-0.12, 0.12))
               @ axis_rotation(np.array([0, 0, 1.0]), rng.uniform(-0.1, 0.1)) @ up)
    unit = _plane_depths(np.array([0.0, 1.0, 0.0]), rot, _corner_rays(rig, bottom_only=True))
    if not np.all(unit > 0):
        rot = up
        unit = _plane_depths(np.array([0.0, 1.0, 0.0]), rot, _corner_rays(rig, bottom_only=True))
    if not np.all(unit > 0):
        return None
    height = z_near * 1.02 / unit.min() * math.exp(rng.uniform(0, math.log(4)))
    return Shape("plane", [0.0, height, 0.0], rot, [0, 0, 0])


def _room_walls(rng: np.random.Generator, rig: StereoRig, z_near: float, max_disparity: float
                ) -> list[Shape]:
    """Side walls and a ceiling that recede from the image edges (slanted surfaces spanning
    a wide disparity range, as in a room); each is kept farther than ``z_near``."""
    fb = rig.fx * rig.baseline
    walls = []
    sides = [("left", -1.0, rig.cx), ("right", 1.0, rig.width - 1 - rig.cx),
             ("ceiling", -1.0, rig.cy)]
    for name, sign, edge_px in sides:
        if rng.random() >= (0.45 if name != "ceiling" else 0.3) or edge_px <= 0:
            continue
        z_edge = fb / (max_disparity * rng.uniform(0.2, 0.9))
        focal = rig.fx if name != "ceiling" else rig.fy
        offset = z_edge * edge_px / focal  # distance of the plane from the optical axis
        axis = 0 if name != "ceiling" else 1
        normal = np.zeros(3)
        normal[axis] = -sign  # facing the camera
        center = np.zeros(3)
        center[axis] = sign * offset
        tilt_axis = np.array([0, 1.0, 0]) if name != "ceiling" else np.array([1.0, 0, 0])
        base = _frame_with_z(normal)
        rot = axis_rotation(tilt_axis, rng.normal(0, 0.15)) @ base
        for r in (rot, base):
            depths = _plane_depths(center, r, _corner_rays(rig))
            hit = depths[np.isfinite(depths) & (depths > 0)]
            if np.all(hit >= z_near * 1.01):
                walls.append(Shape("plane", center, r, [0, 0, 0]))
                break
    return walls


def _frame_with_z(z_axis: np.ndarray) -> np.ndarray:
    """A rotation whose third column (a plane's normal) is ``z_axis``."""
    z = z_axis / np.linalg.norm(z_axis)
    helper = np.array([0, 0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0, 0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def _place(center_dir: np.ndarray, depth: float) -> np.ndarray:
    return center_dir * depth


def _object_rotation(rng: np.random.Generator) -> np.ndarray:
    """Half the objects at any orientation, half roughly upright and facing the camera
    (as furniture, boxes and boards mostly are)."""
    if rng.random() < 0.5:
        return random_rotation(rng)
    yaw = rng.normal(0, 0.5)
    pitch = rng.normal(0, 0.15)
    roll = rng.normal(0, 0.08)
    return (axis_rotation(np.array([0, 1.0, 0]), yaw) @ axis_rotation(np.array([1.0, 0, 0]), pitch)
            @ axis_rotation(np.array([0, 0, 1.0]), roll) @ _facing_camera())


def _random_object(rng: np.random.Generator, rig: StereoRig, z_near: float, d_lo: float,
                   d_hi: float, thin: bool) -> Shape:
    fb = rig.fx * rig.baseline
    d = d_lo + (d_hi - d_lo) * rng.random()
    z = fb / d
    span = rig.width / rig.fx  # metres of view width per metre of depth
    u = rng.uniform(-0.1, 1.1) * rig.width
    v = rng.uniform(-0.1, 1.1) * rig.height
    ray = np.array([(u - rig.cx) / rig.fx, (v - rig.cy) / rig.fy, 1.0])
    if thin:
        radius = rng.uniform(0.5, 4.0) * z / rig.fx
        length = rng.uniform(0.15, 0.7) * rig.height / rig.fy * z
        choice = rng.random()
        if choice < 0.5:  # pole, near vertical
            rot = (axis_rotation(np.array([0, 0, 1.0]), rng.normal(0, 0.15))
                   @ axis_rotation(np.array([1.0, 0, 0]), rng.normal(0, 0.15)))
        elif choice < 0.8:  # wire / rail, near horizontal
            rot = (axis_rotation(np.array([0, 1.0, 0]), rng.uniform(0, math.pi))
                   @ axis_rotation(np.array([0, 0, 1.0]), math.pi / 2 + rng.normal(0, 0.2)))
        else:
            rot = random_rotation(rng)
        if rng.random() < 0.25:  # thin slat instead of a round rod
            shape = Shape("box", [0, 0, 0], rot, [radius, length, radius * rng.uniform(1, 6)])
        else:
            shape = Shape("cylinder", [0, 0, 0], rot, [radius, length, radius])
    else:
        size = math.exp(rng.uniform(math.log(0.04), math.log(0.35))) * span * z
        kind = rng.choice(["box", "sphere", "cylinder", "quad"], p=[0.35, 0.2, 0.15, 0.3])
        aspect = np.exp(rng.uniform(-0.9, 0.9, 3))
        half = size * aspect / aspect.max()
        if kind == "sphere":
            half = np.full(3, size * rng.uniform(0.4, 1.0))
        elif kind == "cylinder":
            half = np.array([half[0], half[1], half[0]])
        elif kind == "quad":
            half = np.array([half[0], half[1], 0.0])
        shape = Shape(str(kind), [0, 0, 0], _object_rotation(rng), half)
    ext_z = shape.world_extent()[2]
    z = max(z, z_near * 1.01 + ext_z)
    shape.center = _place(ray, z)
    return shape


def _random_compound(rng: np.random.Generator, rig: StereoRig, z_near: float, d_lo: float,
                     d_hi: float) -> list[Shape]:
    """A rigid object made of several parts: a fence or grille of slats, a frame (a hole
    showing what is behind), or a table on legs. Parts share one instance id."""
    fb = rig.fx * rig.baseline
    z = fb / (d_lo + (d_hi - d_lo) * rng.random())
    size = math.exp(rng.uniform(math.log(0.08), math.log(0.35))) * rig.width / rig.fx * z
    px = z / rig.fx  # metres per pixel at this depth
    kind = rng.choice(["fence", "frame", "table"], p=[0.45, 0.3, 0.25])
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []  # (kind, local centre, half)
    if kind == "fence":
        n = int(rng.integers(3, 12))
        pitch = 2 * size / n
        w = max(pitch * rng.uniform(0.1, 0.45), 0.7 * px)
        height = size * rng.uniform(0.5, 1.2)
        round_bars = rng.random() < 0.4
        for i in range(n):
            x = -size + pitch * (i + 0.5)
            parts.append(("cylinder" if round_bars else "box", np.array([x, 0, 0]),
                          np.array([w / 2, height, w / 2 * (1 if round_bars else rng.uniform(1, 3))])))
        for _ in range(int(rng.integers(0, 3))):  # horizontal rails
            y = rng.uniform(-0.8, 0.8) * height
            parts.append(("box", np.array([0, y, w]), np.array([size, w / 2, w / 2])))
    elif kind == "frame":
        w = max(size * rng.uniform(0.04, 0.2), 0.7 * px)
        height = size * rng.uniform(0.5, 1.3)
        depth = w * rng.uniform(0.5, 2)
        parts += [("box", np.array([0, -height + w, 0]), np.array([size, w, depth])),
                  ("box", np.array([0, height - w, 0]), np.array([size, w, depth])),
                  ("box", np.array([-size + w, 0, 0]), np.array([w, height, depth])),
                  ("box", np.array([size - w, 0, 0]), np.array([w, height, depth]))]
        if rng.random() < 0.5:  # a cross bar (window)
            parts.append(("box", np.array([0, 0, 0]), np.array([w * 0.7, height, depth * 0.8])))
    else:
        top = max(size * rng.uniform(0.03, 0.1), 0.7 * px)
        deep = size * rng.uniform(0.4, 1.0)
        leg_h = size * rng.uniform(0.4, 0.9)
        leg_r = max(size * rng.uniform(0.02, 0.06), 0.6 * px)
        parts.append(("box", np.array([0, -leg_h - top, 0]), np.array([size, top, deep])))
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("cylinder", np.array([sx * (size - 2 * leg_r), 0, sz * (deep - 2 * leg_r)]),
                              np.array([leg_r, leg_h, leg_r])))
    yaw = rng.normal(0, 0.6) if kind != "table" else rng.uniform(-math.pi, math.pi)
    rot = (axis_rotation(np.array([0, 1.0, 0]), yaw)
           @ axis_rotation(np.array([1.0, 0, 0]), rng.normal(0, 0.1 if kind != "table" else 0.3))
           @ axis_rotation(np.array([0, 0, 1.0]), rng.normal(0, 0.08)))
    u = rng.uniform(0.0, 1.0) * rig.width
    v = rng.uniform(0.0, 1.0) * rig.height
    ray = np.array([(u - rig.cx) / rig.fx, (v - rig.cy) / rig.fy, 1.0])
    shapes = [Shape(k, rot @ c, rot, h) for k, c, h in parts]
    nearest = min(float(sh.center[2] - sh.world_extent()[2]) for sh in shapes)
    z = max(z, z_near * 1.01 - nearest)
    for sh in shapes:
        sh.center = sh.center + ray * z
    return shapes


def _rest_on_ground(parts: list[Shape], ground: Shape, rig: StereoRig, z_near: float) -> bool:
    """Move an object along the ground normal until its lowest point touches the ground.

    Refused (nothing moved, False) when the object would end up out of view or nearer than
    ``z_near``.
    """
    up = ground.rotation[:, 2]

    def reach(shape: Shape) -> float:  # extent of the shape along the ground normal
        if shape.kind == "sphere":
            return float(shape.half[0])
        return float(np.abs(up @ shape.rotation) @ shape.half)

    height = min(float(up @ (p.center - ground.center)) - reach(p) for p in parts)
    moved = [p.center - up * height for p in parts]
    anchor = moved[0]
    if anchor[2] <= 0 or rig.cy + rig.fy * anchor[1] / anchor[2] > rig.height - 1:
        return False
    for p, c in zip(parts, moved, strict=True):
        if c[2] - p.world_extent()[2] < z_near * 1.01:
            return False
    for p, c in zip(parts, moved, strict=True):
        p.center = c
    return True


def random_scene(rng: np.random.Generator, rig: StereoRig, max_disparity: float = 128.0,
                 seed: int = 0) -> Scene:
    """A random cluttered scene whose disparities in ``rig`` lie in (0, max_disparity]."""
    if not max_disparity > 0:
        raise ValueError(f"max_disparity must be positive, got {max_disparity}")
    fb = rig.fx * rig.baseline
    z_near = fb / max_disparity * 1.001
    d_wall = max_disparity * math.exp(rng.uniform(math.log(0.02), math.log(0.35)))
    wall = _random_wall(rng, rig, z_near, d_wall)
    wall_material = _material(rng, rig.fx, fb / d_wall, 512)
    if np.allclose(wall.rotation, _facing_camera()):  # constant depth: one mip level will do
        wall_material.fixed_level = max(0.0, math.log2(wall_material.texels_per_metre
                                                       * fb / d_wall / rig.fx))
    objects = [SceneObject(wall, wall_material, WALL_ID)]
    ground = None
    if rng.random() < 0.8:
        ground = _random_ground(rng, rig, z_near)
        if ground is not None:
            mid = float(ground.center[1]) * rig.fy / max(rig.height - rig.cy, 1.0) * 2
            objects.append(SceneObject(ground, _material(rng, rig.fx, mid, 512), GROUND_ID))
    # Sometimes a room: side walls and a ceiling (their own stream, so the rest is unchanged).
    room_rng = np.random.default_rng([seed, 13])
    if room_rng.random() < 0.35:
        for plane in _room_walls(room_rng, rig, z_near, max_disparity):
            mid = 2.0 * float(np.abs(plane.center).max()) * rig.fx / max(rig.cx, 1.0)
            objects.append(SceneObject(plane, _material(room_rng, rig.fx, mid, 512), WALL_ID))
    # Half the scenes sparse, half cluttered (FlyingThings-like).
    count = int(rng.integers(2, 11)) if rng.random() < 0.5 else int(rng.integers(8, 25))
    thin_count = int(rng.integers(0, 5))
    d_hi = max_disparity * rng.uniform(0.6, 0.97)
    instance = FIRST_OBJECT_ID
    for i in range(count + thin_count):
        thin = i >= count
        if not thin and rng.random() < 0.15:
            parts = _random_compound(rng, rig, z_near, d_wall * 1.05, d_hi)
            depth = float(np.mean([p.center[2] for p in parts]))
            material = _material(rng, rig.fx, depth, 256, small=True)
            objects += [SceneObject(p, material, instance) for p in parts]
        else:
            shape = _random_object(rng, rig, z_near, d_wall * 1.05, d_hi, thin)
            depth = float(shape.center[2])
            objects.append(SceneObject(shape, _material(rng, rig.fx, depth, 256, small=True),
                                       instance))
        # Many objects stand on the ground (their own stream: other choices stay as they were).
        if ground is not None and not thin and np.random.default_rng([seed, 11, instance]
                                                                     ).random() < 0.4:
            _rest_on_ground([o.shape for o in objects if o.instance == instance], ground, rig,
                            z_near)
        instance += 1
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1.5, -0.2), rng.uniform(-1.0, 0.3)])
    scene = Scene(objects, light=light, ambient=float(rng.uniform(0.2, 0.6)), seed=seed,
                  shadows=bool(rng.random() < 0.8), exposure_target=float(rng.uniform(0.7, 1.0)))
    if rng.random() < 0.6:  # a lamp somewhere above the middle of the scene
        z_mid = fb / (0.5 * (d_wall + d_hi))
        pos = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0), rng.uniform(0, 1)]) * z_mid
        scene.point_light = pos
        scene.point_weight = float(rng.uniform(0.2, 0.7))
        scene.point_range = float(np.linalg.norm(pos - np.array([0, 0, z_mid])))
    return scene


def render_random(seed: int, rig: StereoRig | None = None, max_disparity: float = 128.0,
                  photometric: bool = True) -> StereoSample:
    """The scene and pair for ``seed``: the same seed always gives the same sample."""
    rig = rig or StereoRig()
    rng = np.random.default_rng([int(seed), 0])
    scene = random_scene(rng, rig, max_disparity, seed=int(seed))
    return render(scene, rig, photometric=photometric, rng=np.random.default_rng([int(seed), 1]))


# --------------------------------------------------------------------------- sequences

@dataclass
class _Motion:
    amplitude: np.ndarray  # (3,) metres
    omega: float           # rad/frame of the drift
    phase: np.ndarray      # (3,)
    spin_axis: np.ndarray
    spin: float            # rad/frame


class SceneSequence:
    """A smoothly moving random scene: objects drift and spin, the camera sways forward.

    ``frame(i)`` is deterministic in (seed, i) and cheap: textures and the scene are built
    once; each frame only re-poses the shapes and re-renders.
    """

    def __init__(self, seed: int, rig: StereoRig | None = None, max_disparity: float = 128.0,
                 photometric: bool = True) -> None:
        self.seed = int(seed)
        self.rig = rig or StereoRig()
        self.max_disparity = float(max_disparity)
        self.photometric = photometric
        rng = np.random.default_rng([self.seed, 2])
        self.scene = random_scene(rng, self.rig, self.max_disparity, seed=self.seed)
        fb = self.rig.fx * self.rig.baseline
        z_near = fb / self.max_disparity * 1.001
        self._camera_period = rng.uniform(150, 400)
        self._camera_amp = rng.uniform(0.0, 0.15)  # fraction of the slack each object allows
        # One motion per instance: the parts of a compound object move together (no spin).
        by_instance: dict[int, _Motion] = {}
        self._motions: list[_Motion | None] = []
        for obj in self.scene.objects:
            if not obj.shape.bounded:
                self._motions.append(None)
                continue
            if obj.instance not in by_instance:
                parts = [o.shape for o in self.scene.objects
                         if o.instance == obj.instance and o.shape.bounded]
                by_instance[obj.instance] = self._random_motion(rng, parts, z_near)
            self._motions.append(by_instance[obj.instance])
        self._base = [(o.shape.center.copy(), o.shape.rotation.copy()) for o in self.scene.objects]

    @staticmethod
    def _random_motion(rng: np.random.Generator, parts: list[Shape], z_near: float) -> _Motion:
        """Drift (and spin, for single-part objects) bounded so no part comes nearer than
        ``z_near`` in any frame."""
        z = float(np.mean([p.center[2] for p in parts]))
        spin_ok = len(parts) == 1 and (
            float(parts[0].center[2] - np.linalg.norm(parts[0].half)) > z_near * 1.01)
        if spin_ok:
            nearest = float(parts[0].center[2] - np.linalg.norm(parts[0].half))
        else:
            nearest = min(float(p.center[2] - p.world_extent()[2]) for p in parts)
        slack = max(nearest - z_near * 1.01, 0.0)
        lateral = rng.uniform(0.0, 0.15) * z
        amp = np.array([lateral, lateral * rng.uniform(0.2, 1.0),
                        min(rng.uniform(0.0, 0.3) * z, 0.8 * slack)])
        return _Motion(amplitude=amp, omega=2 * math.pi / rng.uniform(80, 400),
                       phase=rng.uniform(0, 2 * math.pi, 3), spin_axis=rng.normal(size=3),
                       spin=rng.uniform(-0.03, 0.03) if spin_ok else 0.0)

    def scene_at(self, index: int) -> Scene:
        t = float(index)
        camera = 0.5 * (1 - math.cos(2 * math.pi * t / self._camera_period))  # 0..1, smooth
        objects = []
        for obj, motion, (c0, r0) in zip(self.scene.objects, self._motions, self._base, strict=True):
            if motion is None:
                if obj.instance == GROUND_ID:  # the ground slides under the moving camera
                    shift = camera * self._camera_amp * float(c0[1]) * 20
                    shape = obj.shape.moved(c0 - np.array([0, 0, shift]), r0)
                else:
                    shape = obj.shape
            else:
                offset = motion.amplitude * np.sin(motion.omega * t + motion.phase)
                offset[2] -= camera * self._camera_amp * motion.amplitude[2]
                offset[2] = max(offset[2], -motion.amplitude[2])
                rot = axis_rotation(motion.spin_axis, motion.spin * t) @ r0 if motion.spin else r0
                shape = obj.shape.moved(c0 + offset, rot)
            objects.append(SceneObject(shape, obj.material, obj.instance))
        return Scene(objects, light=self.scene.light, ambient=self.scene.ambient, seed=self.seed,
                     shadows=self.scene.shadows, point_light=self.scene.point_light,
                     point_weight=self.scene.point_weight, point_range=self.scene.point_range,
                     exposure_target=self.scene.exposure_target)

    def frame(self, index: int) -> StereoSample:
        rng = np.random.default_rng([self.seed, 3, int(index)])
        return render(self.scene_at(index), self.rig, photometric=self.photometric, rng=rng)


# --------------------------------------------------------------------------- command line

def _main(argv: list[str] | None = None) -> int:
    """python -m stereo_depth_ros.data.synthetic [--bench] [--preview out.png]"""
    import argparse
    import time

    import cv2

    from ..visualize import colorize

    p = argparse.ArgumentParser(description="synthetic stereo generator: timing and previews")
    p.add_argument("--bench", action="store_true", help="print render times (CPU and wall)")
    p.add_argument("--preview", help="write a PNG grid: left | right | disparity | occlusion")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--max-disparity", type=float, default=128.0)
    a = p.parse_args(argv)
    rig = StereoRig.for_size(a.width, a.height)
    if a.bench:
        t0 = time.perf_counter()
        for size in textures.BANK_SIZES:
            for i in range(textures.BANK_SIZES[size]):
                textures.bank_texture(i, size)
        print(f"texture bank: {time.perf_counter() - t0:.2f} s (once per process)")
        for w, h, md in ((a.width, a.height, a.max_disparity), (320, 240, a.max_disparity / 2)):
            r = StereoRig.for_size(w, h)
            render_random(a.seed, r, md)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(a.count):
                render_random(a.seed + 1 + i, r, md)
            print(f"{w}x{h}: {(time.process_time() - cpu) / a.count:.3f} s CPU, "
                  f"{(time.perf_counter() - wall) / a.count:.3f} s wall per pair")
    if a.preview:
        rows = []
        for i in range(a.count):
            s = render_random(a.seed + i, rig, a.max_disparity)
            occ = np.repeat((s.occlusion * 255).astype(np.uint8)[..., None], 3, -1)
            rows.append(np.concatenate([s.left, s.right, colorize(s.disparity, 0,
                                                                   a.max_disparity), occ], 1))
        cv2.imwrite(a.preview, np.concatenate(rows, 0)[..., ::-1])
        print(f"wrote {a.preview}")
    if not (a.bench or a.preview):
        p.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
