"""Procedural surface textures for the synthetic stereo generator.

Every function takes a numpy Generator and returns a float32 (size, size, 3) RGB image in
[0, 1]. The mix aims at what real scenes show a stereo matcher: fractal noise at many
scales, man-made patterns (stripes, checkers, grids, bricks, lettering-like marks),
"dead leaves" occlusion clutter (the closest simple model of natural-image statistics),
smooth gradients and near-textureless paint. No photographs ship with the package (no
installed package carries usable ones, and the only real stereo pair in ../shared/data is
for validation only); ``use_photos(folder)`` mixes crops of your own photographs into the
texture bank.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

Texture = np.ndarray


def _rand_color(rng: np.random.Generator, saturation: float | None = None) -> np.ndarray:
    """A random RGB colour with natural-ish saturation (many real surfaces are greyish)."""
    sat = rng.uniform(0.0, 0.8) ** 1.5 if saturation is None else saturation
    value = rng.uniform(0.08, 0.95)
    hue = rng.uniform(0, 6)
    k = (np.array([5.0, 3.0, 1.0]) + hue) % 6
    rgb = value * (1 - sat * np.clip(np.minimum(np.minimum(k, 4 - k), 1), 0, 1))
    return rgb.astype(np.float32)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field with about ``cells`` features across, (size, size) float32, ~[0, 1]."""
    cells = int(max(2, min(cells, size)))
    grid = rng.random((cells + 3, cells + 3), dtype=np.float32)
    # Upsample a slightly larger grid and crop, so the borders look like the interior.
    scale = size / cells
    big = cv2.resize(grid, (round((cells + 3) * scale),) * 2, interpolation=cv2.INTER_CUBIC)
    off = round(1.5 * scale)
    return big[off:off + size, off:off + size]


def fractal_noise(
    rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 5,
    persistence: float = 0.55,
) -> np.ndarray:
    """Multi-octave value noise normalised to [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    cells = base_cells
    for _ in range(octaves):
        if cells > size:
            break
        out += amp * value_noise(rng, size, cells)
        total += amp
        amp *= persistence
        cells *= 2
    out /= total
    lo, hi = np.percentile(out[::4, ::4], (1, 99))  # a subsample is plenty for the range
    return np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)


def _palette(rng: np.random.Generator, field: np.ndarray, n: int | None = None) -> np.ndarray:
    """Map a scalar field in [0, 1] through a random colour ramp."""
    n = n or int(rng.integers(2, 5))
    stops = np.sort(rng.random(n).astype(np.float32))
    stops[0], stops[-1] = 0.0, 1.0
    colors = np.stack([_rand_color(rng) for _ in range(n)])
    out = np.empty(field.shape + (3,), np.float32)
    for c in range(3):
        out[..., c] = np.interp(field, stops, colors[:, c])
    return out


def _rotated_coords(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)


def noise_texture(rng: np.random.Generator, size: int) -> Texture:
    """Coloured fractal noise: stone, foliage, plaster, asphalt."""
    field = fractal_noise(rng, size, int(rng.integers(2, 16)), int(rng.integers(3, 7)),
                          rng.uniform(0.35, 0.75))
    img = _palette(rng, field)
    if rng.random() < 0.5:  # independent fine colour grain
        grain = np.stack([fractal_noise(rng, size, size // 8, 3) for _ in range(3)], -1)
        img = img * (1 - 0.25) + 0.25 * grain * img.mean()
    return img


def stripes_texture(rng: np.random.Generator, size: int) -> Texture:
    """Stripes at a random period, orientation and edge sharpness (fabric, blinds, boards)."""
    u, _ = _rotated_coords(rng, size)
    period = rng.uniform(4, size / 3)
    sharp = rng.uniform(0.5, 8)
    wave = np.sin(2 * np.pi * u / period + rng.uniform(0, 6.3))
    field = 0.5 + 0.5 * np.tanh(sharp * wave) / np.tanh(sharp)
    img = _palette(rng, field, 2)
    return _dirty(rng, img)


def checker_texture(rng: np.random.Generator, size: int) -> Texture:
    """Checkerboards and grids (tiles, windows, fences, calibration targets)."""
    u, v = _rotated_coords(rng, size)
    pu, pv = rng.uniform(6, size / 3), rng.uniform(6, size / 3)
    if rng.random() < 0.5:
        field = ((np.floor(u / pu) + np.floor(v / pv)) % 2).astype(np.float32)
    else:
        width = rng.uniform(0.05, 0.3)
        lines = ((u / pu) % 1 < width) | ((v / pv) % 1 < width)
        field = lines.astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), rng.uniform(0.3, 1.5))
    return _dirty(rng, _palette(rng, field, 2))


def brick_texture(rng: np.random.Generator, size: int) -> Texture:
    """Running-bond bricks with per-brick colour variation and mortar."""
    bh = rng.uniform(6, size / 6)
    bw = bh * rng.uniform(1.5, 4)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    row = np.floor(y / bh)
    xs = x + (row % 2) * bw / 2
    col = np.floor(xs / bw)
    mortar_w = rng.uniform(0.04, 0.15)
    mortar = ((y / bh) % 1 < mortar_w) | ((xs / bw) % 1 < mortar_w * bh / bw)
    base = _rand_color(rng, rng.uniform(0.2, 0.7))
    ids = (row * 131 + col * 17).astype(np.int64) % 997
    jitter = rng.uniform(-0.15, 0.15, (997, 3)).astype(np.float32)
    img = np.clip(base + jitter[ids], 0, 1)
    img[mortar] = _rand_color(rng, 0.05)
    return _dirty(rng, img)


def dead_leaves_texture(rng: np.random.Generator, size: int) -> Texture:
    """Overlapping random discs, ellipses and polygons with power-law sizes (natural clutter)."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = _rand_color(rng)
    count = int(rng.integers(40, 250))
    rmin, rmax = 1.5, size / rng.uniform(2, 6)
    for _ in range(count):
        # Power-law radius: p(r) ~ r^-3 between rmin and rmax.
        r = 1.0 / np.sqrt(rng.uniform(1 / rmax**2, 1 / rmin**2))
        cx, cy = rng.uniform(-r, size + r, 2)
        color = tuple(float(c) for c in _rand_color(rng))
        shape = rng.random()
        if shape < 0.45:
            cv2.circle(img, (int(cx), int(cy)), max(1, int(r)), color, -1, cv2.LINE_AA)
        elif shape < 0.7:
            axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.2, 1))))
            cv2.ellipse(img, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, color, -1,
                        cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = r * rng.uniform(0.5, 1.2, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], -1)
            cv2.fillPoly(img, [pts.astype(np.int32)], color, cv2.LINE_AA)
    return img


def pebbles_texture(rng: np.random.Generator, size: int) -> Texture:
    """Gravel, pebbles, foliage: many small shaded blobs in layers, darker further down."""
    img = np.empty((size, size, 3), np.float32)
    base = _rand_color(rng, rng.uniform(0.0, 0.5))
    img[:] = base * 0.4
    light = rng.uniform(0, 2 * np.pi)
    lx, ly = np.cos(light), np.sin(light)
    leafy = rng.random() < 0.4
    r_mean = size / rng.uniform(12, 40)
    layers = int(rng.integers(2, 4))
    for layer in range(layers):
        dim = 0.55 + 0.45 * (layer + 1) / layers  # deeper layers are in shade
        for _ in range(int(rng.integers(60, 260))):
            r = max(1.5, r_mean * np.exp(rng.normal(0, 0.4)))
            cx, cy = rng.uniform(0, size, 2)
            color = np.clip(base * rng.uniform(0.5, 1.4) + rng.normal(0, 0.04, 3), 0, 1) * dim
            axes = (max(1, int(r)), max(1, int(r * (rng.uniform(0.25, 0.5) if leafy
                                                      else rng.uniform(0.6, 1.0)))))
            angle = rng.uniform(0, 180)
            cv2.ellipse(img, (int(cx), int(cy)), axes, angle, 0, 360,
                        tuple(float(c) for c in color * 0.75), -1, cv2.LINE_AA)
            # The lit side: a smaller, brighter ellipse shifted towards the light.
            hx, hy = int(cx + lx * r * 0.25), int(cy + ly * r * 0.25)
            cv2.ellipse(img, (hx, hy), (max(1, int(axes[0] * 0.7)), max(1, int(axes[1] * 0.7))),
                        angle, 0, 360, tuple(float(c) for c in np.clip(color * 1.1, 0, 1)), -1,
                        cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))


def marble_texture(rng: np.random.Generator, size: int) -> Texture:
    """Turbulent sinusoid bands: wood grain, marble, sediment."""
    u, _ = _rotated_coords(rng, size)
    turb = fractal_noise(rng, size, int(rng.integers(2, 8)), 5)
    period = rng.uniform(8, size / 2)
    field = 0.5 + 0.5 * np.sin(2 * np.pi * u / period + rng.uniform(2, 12) * turb)
    field = field ** rng.uniform(0.5, 2.0)
    return _palette(rng, field.astype(np.float32))


def marks_texture(rng: np.random.Generator, size: int) -> Texture:
    """Paper/poster-like surface: strokes, lines and glyph-like marks on a flat ground."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (_rand_color(rng) * 255).astype(np.uint8)
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
             cv2.FONT_HERSHEY_PLAIN)
    letters = "ABCDEFGHKMNPRSTUVWXYZ0123456789"
    for _ in range(int(rng.integers(10, 60))):
        color = tuple(int(c * 255) for c in _rand_color(rng))
        if rng.random() < 0.5:
            text = "".join(rng.choice(list(letters), int(rng.integers(1, 8))))
            org = (int(rng.integers(-20, size)), int(rng.integers(0, size + 20)))
            cv2.putText(img, text, org, fonts[int(rng.integers(len(fonts)))],
                        rng.uniform(0.3, 2.5), color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            p1 = tuple(int(v) for v in rng.integers(0, size, 2))
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 6)), cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def smooth_texture(rng: np.random.Generator, size: int) -> Texture:
    """Low-texture paint: a gradient or very faint noise (walls, sky-like, plastic)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = _rand_color(rng), _rand_color(rng)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)
    img = a + (b - a) * t[..., None] * rng.uniform(0, 0.6)
    faint = fractal_noise(rng, size, int(rng.integers(4, 32)), 4)
    return np.clip(img + (faint[..., None] - 0.5) * rng.uniform(0.0, 0.08), 0, 1)


def collage_texture(rng: np.random.Generator, size: int) -> Texture:
    """Patches of other textures inside random polygons and ellipses (cluttered surfaces)."""
    base_kinds = [k for k in KINDS if k not in ("collage", "smooth")]
    img = KINDS[base_kinds[int(rng.integers(len(base_kinds)))]][0](rng, size)
    for _ in range(int(rng.integers(2, 7))):
        patch = KINDS[base_kinds[int(rng.integers(len(base_kinds)))]][0](rng, size)
        mask = np.zeros((size, size), np.uint8)
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.1, 0.45) * size
        if rng.random() < 0.5:
            cv2.ellipse(mask, (int(cx), int(cy)), (int(r), int(r * rng.uniform(0.3, 1))),
                        rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = r * rng.uniform(0.4, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], -1)
            cv2.fillPoly(mask, [pts.astype(np.int32)], 255, cv2.LINE_AA)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - alpha) + patch * alpha
    return img


def _dirty(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Multiply a pattern by faint fractal dirt so it is not perfectly regular."""
    if rng.random() < 0.7:
        dirt = fractal_noise(rng, img.shape[0], int(rng.integers(4, 24)), 4)
        strength = rng.uniform(0.05, 0.4)
        img = img * (1 - strength + strength * dirt[..., None])
    return img


KINDS: dict[str, tuple[Callable[[np.random.Generator, int], Texture], float]] = {
    "noise": (noise_texture, 0.2),
    "pebbles": (pebbles_texture, 0.1),
    "dead_leaves": (dead_leaves_texture, 0.17),
    "marble": (marble_texture, 0.1),
    "stripes": (stripes_texture, 0.1),
    "checker": (checker_texture, 0.08),
    "brick": (brick_texture, 0.06),
    "marks": (marks_texture, 0.08),
    "smooth": (smooth_texture, 0.06),
    "collage": (collage_texture, 0.12),
}


def random_texture(rng: np.random.Generator, size: int = 256, kind: str | None = None) -> Texture:
    """A random texture (float32 (size, size, 3) in [0, 1]); ``kind`` picks one of KINDS."""
    if kind is None:
        names = list(KINDS)
        weights = np.array([KINDS[n][1] for n in names])
        kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if kind not in KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; known: {', '.join(KINDS)}")
    img = KINDS[kind][0](rng, size)
    if kind != "smooth" and rng.random() < 0.3:  # sometimes overlay a second pattern
        other = noise_texture(rng, size)
        alpha = rng.uniform(0.1, 0.4)
        img = img * (1 - alpha) + other * alpha
    return np.ascontiguousarray(np.clip(img, 0, 1), dtype=np.float32)


def mip_pyramid(texture: Texture, min_size: int = 4) -> list[np.ndarray]:
    """Low-pass mip levels, finest first, for alias-free sampling at any distance.

    Float textures give float32 levels; uint8 textures (the bank) stay uint8.
    """
    dtype = np.uint8 if texture.dtype == np.uint8 else np.float32
    levels = [np.ascontiguousarray(texture, dtype=dtype)]
    while min(levels[-1].shape[:2]) >= 2 * min_size:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


# A bank of textures generated lazily from fixed seeds: generating a fresh texture for every
# surface of every sample costs more than rendering, so samples draw bank entries (with a
# per-use colour and coordinate transform, see synthetic.Material). Entry i is always the
# same texture, whatever the order of use, so samples stay reproducible across processes.
BANK_SEED = 20261123
BANK_SIZES = {256: 160, 512: 32}  # texture size -> number of entries (uint8, ~75 MB in all)
_BANK: dict[tuple[int, int], list[np.ndarray]] = {}
_DETAIL_BANK: dict[int, list[np.ndarray]] = {}


_PHOTOS: list[Path] = []
_PHOTO_FRACTION = 0.0
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff")


# Photographs in scikit-image's wheel that may serve as textures. Its Middlebury Motorcycle pair
# (motorcycle_left/right.png) is test data of this package and is never among them.
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "microaneurysms.png", "moon.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
)


def skimage_photos() -> list[Path]:
    """The :data:`SKIMAGE_PHOTOS` files of the installed scikit-image; FileNotFoundError without it."""
    try:
        import skimage.data
    except ImportError:
        raise FileNotFoundError("photos 'skimage' need scikit-image (pip install scikit-image)") from None
    folder = Path(skimage.data.__file__).parent
    found = [folder / name for name in SKIMAGE_PHOTOS if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(f"{folder}: none of scikit-image's sample photographs found")
    return found


def use_photos(folder: str | Path | None, fraction: float = 0.4) -> int:
    """Let a ``fraction`` of the bank entries be crops of photographs.

    Every image file under ``folder`` (recursively) becomes a source; ``"skimage"`` takes the
    photographs scikit-image ships (:data:`SKIMAGE_PHOTOS`); ``None`` goes back to procedural
    textures only. Returns the number of photos found. Samples then depend on the photo set as
    well as the seed. Never point this at evaluation images (for example the validation-only
    pairs in ../shared/data): that would leak them into training.
    """
    global _PHOTO_FRACTION
    _BANK.clear()
    _DETAIL_BANK.clear()
    _PHOTOS.clear()
    if folder is None:
        _PHOTO_FRACTION = 0.0
        return 0
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"photo fraction must be in [0, 1], got {fraction}")
    if str(folder) == "skimage":
        _PHOTOS.extend(skimage_photos())
    else:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: photo folder not found")
        _PHOTOS.extend(sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES))
        if not _PHOTOS:
            raise FileNotFoundError(f"{root}: no images ({', '.join(PHOTO_SUFFIXES)}) found")
    _PHOTO_FRACTION = float(fraction)
    return len(_PHOTOS)


def photos_in_use() -> tuple[int, float]:
    """(number of photos, fraction of bank entries drawn from them)."""
    return len(_PHOTOS), _PHOTO_FRACTION


def _photo_crop(rng: np.random.Generator, size: int) -> Texture | None:
    """A random crop (random scale, maybe mirrored) of one of the photos, or None if the
    chosen file cannot be read."""
    path = _PHOTOS[int(rng.integers(len(_PHOTOS)))]
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or min(img.shape[:2]) < 16:
        return None
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.25, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop[..., ::-1], dtype=np.float32) / 255.0


def bank_texture(index: int, size: int = 256) -> list[np.ndarray]:
    """Mip pyramid (uint8 levels) of bank entry ``index`` (modulo the bank size) at ``size``."""
    count = BANK_SIZES.get(size, 64)
    key = (int(index) % count, int(size))
    levels = _BANK.get(key)
    if levels is None:
        rng = np.random.default_rng([BANK_SEED, key[1], key[0]])
        img = None
        if _PHOTOS and rng.random() < _PHOTO_FRACTION:
            img = _photo_crop(rng, size)
        if img is None:
            img = random_texture(rng, size)
        levels = mip_pyramid((img * 255 + 0.5).astype(np.uint8))
        _BANK[key] = levels
    return levels


def bank_detail(index: int) -> list[np.ndarray]:
    """Grey (2-D uint8) mip pyramid of bank entry ``index`` at 256, contrast-normalised: the
    fine detail layer of materials."""
    key = int(index) % BANK_SIZES[256]
    levels = _DETAIL_BANK.get(key)
    if levels is None:
        grey = bank_texture(key, 256)[0].mean(axis=2)
        lo, hi = np.percentile(grey, (2, 98))
        grey = np.clip((grey - lo) / max(hi - lo, 1.0), 0, 1)
        levels = mip_pyramid((grey * 255 + 0.5).astype(np.uint8))
        _DETAIL_BANK[key] = levels
    return levels
