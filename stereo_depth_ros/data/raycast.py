"""Vectorized ray casting of analytic primitives (the geometry half of the generator).

A shape lives in its own local frame, posed by a rotation R (columns = local axes in the
world) and a centre c: world = c + R @ local. Rays are (origin, directions) with one origin
and many directions (N, 3), not normalised; ``intersect`` returns the ray parameter t of the
nearest hit in front of the origin (inf where the ray misses), so a point is origin + t*d.
With camera rays whose z component is 1, t is the depth Z.

Local shapes: plane z=0 (infinite), quad z=0 with |x|<=hx, |y|<=hy, box |x|<=ex.., sphere of
radius r, cylinder around the local y axis (radius r, |y|<=h, capped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("plane", "quad", "box", "sphere", "cylinder")
_FACE_OFFSETS = np.array(
    [[0.0, 0.0], [3.7, 1.1], [7.3, 5.9], [11.1, 2.3], [13.9, 9.7], [17.3, 4.1], [21.7, 13.3],
     [23.9, 6.7]], np.float32)


@dataclass
class Shape:
    """One analytic primitive: kind, centre (3,), rotation (3, 3) local->world, half sizes (3,).

    half: quad (hx, hy, 0); box (ex, ey, ez); sphere (r, r, r); cylinder (r, h, r); plane unused.
    """

    kind: str
    center: np.ndarray
    rotation: np.ndarray
    half: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown shape kind {self.kind!r}; known: {', '.join(KINDS)}")
        self.center = np.asarray(self.center, np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, np.float64).reshape(3, 3)
        self.half = np.asarray(self.half, np.float64).reshape(3)

    @property
    def bounded(self) -> bool:
        return self.kind != "plane"

    def world_extent(self) -> np.ndarray:
        """Half extents of the world-axis-aligned box around the shape (inf for planes)."""
        if self.kind == "plane":
            return np.full(3, np.inf)
        if self.kind == "sphere":
            return np.full(3, self.half[0])
        return np.abs(self.rotation) @ self.half

    def moved(self, center: np.ndarray, rotation: np.ndarray) -> Shape:
        return Shape(self.kind, center, rotation, self.half.copy())


Vec = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rotate_in(shape: Shape, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray | float) -> Vec:
    """World direction components -> local components (R^T d), one multiply-add per term.

    Component arrays (structure of arrays) instead of (N, 3) @ (3, 3): numpy's small matmul
    is several times slower than three fused element-wise passes.
    """
    r = shape.rotation.astype(np.float32)
    return tuple(dx * r[0, k] + dy * r[1, k] + dz * r[2, k] for k in range(3))  # type: ignore


def intersect(shape: Shape, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
              dz: np.ndarray | float = 1.0) -> np.ndarray:
    """Ray parameter of the nearest hit with t > 0 for each ray; inf = miss.

    Rays start at ``origin``: one point (3,), or one per ray as a tuple of three component
    arrays; direction components dx, dy, dz are arrays of one shape (any may be a scalar,
    e.g. dz = 1 for camera rays). Returns float32 of the rays' shape.
    """
    if isinstance(origin, tuple):  # per-ray origins, component arrays
        c = shape.center.astype(np.float32)
        q = [origin[k] - c[k] for k in range(3)]
        r32 = shape.rotation.astype(np.float32)
        o = [q[0] * r32[0, k] + q[1] * r32[1, k] + q[2] * r32[2, k] for k in range(3)]
    else:
        o = ((np.asarray(origin, np.float64) - shape.center) @ shape.rotation).astype(np.float32)
    kind = shape.kind
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind in ("plane", "quad"):
            r = shape.rotation.astype(np.float32)
            nz = dx * r[0, 2] + dy * r[1, 2] + dz * r[2, 2]
            t = -o[2] / nz
            hit = t > 0
            if kind == "quad":
                lx = dx * r[0, 0] + dy * r[1, 0] + dz * r[2, 0]
                ly = dx * r[0, 1] + dy * r[1, 1] + dz * r[2, 1]
                hit &= (np.abs(o[0] + t * lx) <= shape.half[0])
                hit &= (np.abs(o[1] + t * ly) <= shape.half[1])
        elif kind == "box":
            d = _rotate_in(shape, dx, dy, dz)
            tnear = None
            tfar = None
            for k in range(3):
                e = np.float32(shape.half[k])
                inv = np.float32(1.0) / d[k]
                t1 = (-e - o[k]) * inv
                t2 = (e - o[k]) * inv
                lo = np.minimum(t1, t2)
                hi = np.maximum(t1, t2)
                tnear = lo if tnear is None else np.maximum(tnear, lo)
                tfar = hi if tfar is None else np.minimum(tfar, hi)
            hit = (tnear <= tfar) & (tnear > 0)
            t = tnear
        elif kind == "sphere":
            rr = np.float32(shape.half[0])
            d = _rotate_in(shape, dx, dy, dz)
            a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            b = d[0] * o[0] + d[1] * o[1] + d[2] * o[2]
            c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - rr * rr
            disc = b * b - a * c
            t = (-b - np.sqrt(np.maximum(disc, 0))) / a
            hit = (disc >= 0) & (t > 0)
        else:  # cylinder around local y
            rr, h = np.float32(shape.half[0]), np.float32(shape.half[1])
            d = _rotate_in(shape, dx, dy, dz)
            a = d[0] * d[0] + d[2] * d[2]
            b = d[0] * o[0] + d[2] * o[2]
            c = o[0] * o[0] + o[2] * o[2] - rr * rr
            disc = b * b - a * c
            ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
            side = (disc >= 0) & (ts > 0) & (np.abs(o[1] + ts * d[1]) <= h)
            t = np.where(side, ts, np.float32(np.inf))
            for cap in (-h, h):
                tc = (cap - o[1]) / d[1]
                xc = o[0] + tc * d[0]
                zc = o[2] + tc * d[2]
                ok = (tc > 0) & (xc * xc + zc * zc <= rr * rr) & (tc < t)
                t = np.where(ok, tc, t)
            hit = np.isfinite(t)
    t = np.where(hit, t, np.float32(np.inf))
    shape_out = np.broadcast(dx, dy, dz, *(o if isinstance(origin, tuple) else ())).shape
    return np.broadcast_to(t, shape_out).astype(np.float32, copy=False)


def surface(shape: Shape, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates (N, 2) in metres on the shape and outward unit normals (N, 3).

    The coordinates depend only on the 3D point, so two cameras seeing the same surface point
    sample the same texel: that is what makes the generated ground truth exact.
    """
    c = shape.center.astype(np.float32)
    r = shape.rotation.astype(np.float32)
    q = [points[:, k] - c[k] for k in range(3)]
    p = [q[0] * r[0, k] + q[1] * r[1, k] + q[2] * r[2, k] for k in range(3)]
    zero = np.zeros_like(p[0])
    one = np.ones_like(p[0])
    if shape.kind in ("plane", "quad"):
        u, v = p[0], p[1]
        n = (zero, zero, one)
    elif shape.kind == "box":
        e = shape.half.astype(np.float32)
        ratio = np.stack([np.abs(p[k]) / e[k] for k in range(3)])
        axis = np.argmax(ratio, axis=0)
        pa = np.choose(axis, p)
        sign = np.where(pa >= 0, np.float32(1), np.float32(-1))
        n = tuple(np.where(axis == k, sign, zero) for k in range(3))
        u = np.choose(axis, (p[2], p[0], p[0]))
        v = np.choose(axis, (p[1], p[2], p[1]))
        off = _FACE_OFFSETS[axis * 2 + (sign > 0)]
        u = u + off[:, 0]
        v = v + off[:, 1]
    elif shape.kind == "sphere":
        rad = np.float32(shape.half[0])
        norm = np.maximum(np.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2), np.float32(1e-9))
        n = (p[0] / norm, p[1] / norm, p[2] / norm)
        u = np.arctan2(p[0], p[2]) * rad
        v = np.arccos(np.clip(n[1], -1, 1)) * rad
    else:
        rad, h = np.float32(shape.half[0]), np.float32(shape.half[1])
        radial = np.sqrt(p[0] ** 2 + p[2] ** 2)
        cap = np.abs(np.abs(p[1]) - h) < np.abs(radial - rad)
        u = np.where(cap, p[0] + _FACE_OFFSETS[5, 0], np.arctan2(p[0], p[2]) * rad)
        v = np.where(cap, p[2] + _FACE_OFFSETS[5, 1], p[1])
        safe = np.maximum(radial, np.float32(1e-9))
        n = (np.where(cap, zero, p[0] / safe), np.where(cap, np.sign(p[1]), zero),
             np.where(cap, zero, p[2] / safe))
    normal = np.stack([n[0] * r[k, 0] + n[1] * r[k, 1] + n[2] * r[k, 2] for k in range(3)], 1)
    uv = np.stack([u, v], 1)
    return uv.astype(np.float32, copy=False), normal.astype(np.float32, copy=False)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3D rotation matrix."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` radians around ``axis`` (Rodrigues)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
