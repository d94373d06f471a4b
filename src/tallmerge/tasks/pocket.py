"""The pocket benchmark: fourteen small 32x32 RGB classification tasks generated from a seed.

Each task exercises a different visual skill, as the paper's datasets do, so that fine-tuning
moves a shared encoder in different, partly conflicting directions. The first eight stand in for
the paper's 8-task benchmark; the last six extend the registry to 14, as its second benchmark:

=================  ==================  ================================================
task               stands in for       skill (and nuisances)
=================  ==================  ================================================
``digits``         MNIST               real handwritten digits (colours, position)
``house-numbers``  SVHN                printed digit between cut-off neighbours, clutter
``letters``        glyph recognition   letter identity under rotation and scale
``shapes``         --                  shape, ignoring colour, size and rotation
``colors``         --                  colour, ignoring shape
``textures``       DTD                 texture, ignoring colours, scale and orientation
``counting``       CLEVR-count         number of objects, ignoring what they are
``landcover``      EuroSAT             aerial scene structure and colour
``signs``          GTSRB               sign plate, colours and symbol (clutter, dim light)
``clothing``       Fashion-MNIST       garment silhouette (light item on a dark scan)
``faces``          FER2013             facial expression (greyscale, any skin tone, tilt)
``vehicles``       Stanford Cars       body type from the side (either direction, paint)
``tissue``         PatchCamelyon       healthy vs tumour nuclei on an H&E-stained slide
``scenes``         SUN397              a view to the horizon (beach, skyline, ...)
=================  ==================  ================================================

Every split draws from its own random stream (``train``/``val``/``test``/``web``), so splits
never share an image; ``digits`` also partitions its 1797 source images into disjoint pools.
The ``web`` split is what the tiny CLIP is pre-trained on: the same concepts, mostly in a clean
canonical look and partly (a share, ``pretrain.web_variety`` in params.yaml) in the task's own
varied style, as web images of a concept are. ``digits`` (typed, never handwritten), ``colors``, ``landcover``, ``signs``,
``faces`` and ``tissue`` show only the canonical look, so their tasks keep the largest domain gap.

Images are rendered a batch at a time with shared numpy helpers: smooth-noise backgrounds, a
vectorised affine "stamp" that paints greyscale masks (shapes, font glyphs, handwritten digits)
in a colour, and one nuisance pass (blur, contrast, pixel noise). Glyphs come from Pillow's
bundled scalable font, so images depend on no system font.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tallmerge.errors import TallmergeError
from tallmerge.tasks.registry import SPLITS, WEB_SPLIT, register_task

SIZE = 32
_SPLIT_IDS = {split: i for i, split in enumerate((*SPLITS, WEB_SPLIT))}
_CHUNK = 512  # images rendered per batch (bounds memory)
_MASK, _PAD = 64, 2  # side of the shape and glyph masks; zero border around every mask
_POOL_FRACTIONS = (0.6, 0.1)  # digits source pools: train, val; test gets the rest


def _const(values, dtype=np.float32) -> np.ndarray:
    """A read-only array: module constants and cached atlases are never modified."""
    out = np.array(values, dtype)
    out.flags.writeable = False
    return out


_PIX = _const(np.arange(SIZE) + 0.5)  # pixel-centre coordinates
_Y, _X = (_const(a) for a in np.meshgrid(_PIX - SIZE / 2, _PIX - SIZE / 2, indexing="ij"))
_LUMA = _const([0.3, 0.59, 0.11])

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = tuple("ABCDEFGHIJ")
_GLYPHS = "0123456789" + "".join(LETTERS)  # rows of the glyph atlas
SHAPES = ("circle", "square", "triangle", "hexagon", "star", "cross", "heart", "crescent")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
TEXTURES = ("striped", "zigzagged", "checkered", "dotted", "grid", "cracked", "blotchy", "speckled")
LANDCOVER = ("forest", "pasture", "sea or lake", "river", "highway", "farmland",
             "residential buildings", "desert")  # fmt: skip

Render = Callable[[np.random.Generator, np.ndarray, str], np.ndarray]


# --------------------------------------------------------------------------- seeds and sampling
def _split_rng(seed: int, name: str, split: str) -> np.random.Generator:
    """The random stream of one (seed, task, split); raises on an unknown split or bad seed."""
    if split not in _SPLIT_IDS:
        raise TallmergeError(
            f"unknown split {split!r} for task {name!r}; expected one of {', '.join(_SPLIT_IDS)}"
        )
    if int(seed) != seed or seed < 0:
        raise TallmergeError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), _SPLIT_IDS[split]])


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` labels in ``[0, k)`` whose counts differ by at most one, in shuffled order."""
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def _uniform(rng: np.random.Generator, lo, hi, n) -> np.ndarray:
    """``n`` (or shape ``n``) uniform float32 draws in ``[lo, hi)``."""
    return rng.uniform(lo, hi, n).astype(np.float32)


def _per_image(x: np.ndarray) -> np.ndarray:
    """Per-image values ``[n]`` reshaped to broadcast against ``[n, SIZE, SIZE]``."""
    return x[:, None, None]


def _hsv(h, s, v) -> np.ndarray:
    """RGB ``[n, 3]`` in 0..255 from hue (degrees), saturation and value arrays ``[n]``."""
    h, s, v = (np.asarray(a, np.float32)[:, None] for a in (h, s, v))
    k = (np.array([5.0, 3.0, 1.0], np.float32) + (h % 360) / 60) % 6
    return 255 * v * (1 - s * np.clip(np.minimum(k, 4 - k), 0, 1))


def _contrasting(rng: np.random.Generator, ref: np.ndarray, dist: float = 140.0) -> np.ndarray:
    """Random colours ``[n, 3]`` at least ``dist`` from ``ref`` in RGB, with a luminance gap too."""
    out = _uniform(rng, 0, 255, ref.shape)
    todo = np.arange(len(ref))
    while todo.size:  # resample only the colours that are too close
        out[todo] = _uniform(rng, 0, 255, (todo.size, 3))
        d = out[todo] - ref[todo]
        todo = todo[((d * d).sum(1) < dist**2) | (np.abs(d @ _LUMA) < 45)]
    return out


# --------------------------------------------------------------------------- fields, backgrounds
@functools.cache
def _upsampler(cells: int) -> np.ndarray:
    """Interpolation matrix ``[SIZE, cells]`` taking a coarse grid to full size (smoothstep
    weights, so fields have no creases at the control points)."""
    pos = np.clip(_PIX * cells / SIZE - 0.5, 0, cells - 1)
    lo = np.minimum(pos.astype(int), cells - 2)
    t = pos - lo
    m = np.zeros((SIZE, cells), np.float32)
    m[np.arange(SIZE), lo] = 1 - t * t * (3 - 2 * t)
    m[np.arange(SIZE), lo + 1] = t * t * (3 - 2 * t)
    return _const(m)


def _smooth_field(rng: np.random.Generator, n: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth random fields ``[n, SIZE, SIZE, channels]``: standard normal values at ``cells x
    cells`` control points, interpolated (so ``cells`` sets the blob scale)."""
    up = _upsampler(cells)
    g = rng.standard_normal((n, channels, cells, cells), dtype=np.float32)
    return (up @ g @ up.T).transpose(0, 2, 3, 1)


def _background(rng: np.random.Generator, base: np.ndarray, amp, cells: int = 3) -> np.ndarray:
    """Canvases ``[n, SIZE, SIZE, 3]``: colours ``base [n, 3]`` plus smooth coloured variation."""
    field = _smooth_field(rng, len(base), cells, 3)
    return base[:, None, None, :] + np.reshape(amp, (-1, 1, 1, 1)) * field


def _busy_background(rng: np.random.Generator, n: int, lo: float = 0, hi: float = 35):
    """Random colours with smooth variations of random scale and strength: ``(canvas, base)``."""
    base = _uniform(rng, 0, 255, (n, 3))
    weights = _uniform(rng, 0, 1, (n, 2))  # mix of coarse and fine variation
    field = _per_image(weights[:, 0])[..., None] * _smooth_field(rng, n, 2, 3)
    field += _per_image(weights[:, 1])[..., None] * _smooth_field(rng, n, 6, 3)
    return base[:, None, None, :] + _per_image(_uniform(rng, lo, hi, n))[..., None] * field, base


def _flat(color: np.ndarray) -> np.ndarray:
    """Plain canvases ``[n, SIZE, SIZE, 3]`` of colours ``[n, 3]``."""
    canvas = np.empty((len(color), SIZE, SIZE, 3), np.float32)
    canvas[:] = color[:, None, None, :]
    return canvas


def _mix(c0: np.ndarray, c1: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Blend two colour fields (anything broadcasting to ``[n, SIZE, SIZE, 3]``) by masks ``m``."""
    return c0 + m[..., None] * (c1 - c0)


def _rotated(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates ``[n, SIZE, SIZE]`` rotated by angles ``theta`` (radians)."""
    c, s = _per_image(np.cos(theta)).astype(np.float32), _per_image(np.sin(theta)).astype(np.float32)
    return _X * c + _Y * s, _Y * c - _X * s


# --------------------------------------------------------------------------- masks and stamping
def _atlas(masks: list[Image.Image], blur: float) -> np.ndarray:
    """Stack 'L' masks into a read-only float atlas ``[k, S, S]`` in 0..1 with a zero border.

    The blur pre-filters the high-resolution masks so that the down-scaling stamp stays smooth."""
    masks = [m.filter(ImageFilter.GaussianBlur(blur)) if blur else m for m in masks]
    arr = np.stack([np.asarray(m) for m in masks])
    return _const(np.pad(arr.astype(np.float32) / 255, ((0, 0), (_PAD, _PAD), (_PAD, _PAD))))


def _shape_image(name: str) -> Image.Image:
    """High-resolution mask of one shape of ``SHAPES``, centred, radius about 0.45 of the canvas."""
    c, r = _MASK / 2, 0.45 * _MASK
    img = Image.new("L", (_MASK, _MASK), 0)
    draw = ImageDraw.Draw(img)

    def ngon(k, radius, phase=-90.0):
        angles = np.radians(phase + 360 * np.arange(k) / k)
        return list(zip(c + radius * np.cos(angles), c + radius * np.sin(angles)))

    if name in ("circle", "crescent"):
        draw.ellipse([c - r * 0.9, c - r * 0.9, c + r * 0.9, c + r * 0.9], fill=255)
        if name == "crescent":
            draw.ellipse([c - r * 0.55, c - r * 1.05, c + r * 1.15, c + r * 0.65], fill=0)
    elif name == "square":
        draw.polygon(ngon(4, r * 1.05, 45), fill=255)
    elif name == "triangle":
        draw.polygon([(x, y + r * 0.2) for x, y in ngon(3, r * 1.15)], fill=255)
    elif name == "hexagon":
        draw.polygon(ngon(6, r, 0), fill=255)
    elif name == "star":
        outer, inner = ngon(5, r * 1.05), ngon(5, r * 0.45, -54)
        draw.polygon([p for pair in zip(outer, inner) for p in pair], fill=255)
    elif name == "cross":
        a, w = r * 0.95, r * 0.33
        draw.rectangle([c - a, c - w, c + a, c + w], fill=255)
        draw.rectangle([c - w, c - a, c + w, c + a], fill=255)
    elif name == "heart":
        t = np.linspace(0, 2 * np.pi, 80)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        draw.polygon(list(zip(c + x * r / 16.5, c + (y + 2) * r / 16.5)), fill=255)
    return img


def _glyph_image(char: str) -> Image.Image:
    """High-resolution mask of a bold glyph of Pillow's bundled font, ink 0.8 of the height."""
    img = Image.new("L", (2 * _MASK, 2 * _MASK), 0)
    font = ImageFont.load_default(size=40)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
        raise TallmergeError("the pocket tasks need Pillow >= 10.1 with FreeType support")
    ImageDraw.Draw(img).text((_MASK // 2, _MASK // 2), char, fill=255, font=font, stroke_width=2,
                             stroke_fill=255)  # fmt: skip
    x0, y0, x1, y1 = img.getbbox()
    side = round((y1 - y0) / 0.8)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(img.crop((x0, y0, x1, y1)), ((side - (x1 - x0)) // 2, (side - (y1 - y0)) // 2))
    return canvas.resize((_MASK, _MASK), Image.Resampling.LANCZOS)


@functools.cache
def _shape_atlas() -> np.ndarray:
    return _atlas([_shape_image(name) for name in SHAPES], blur=1.2)


@functools.cache
def _glyph_atlas() -> np.ndarray:
    return _atlas([_glyph_image(char) for char in _GLYPHS], blur=1.0)


@functools.cache
def _handwritten() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 real 8x8 handwritten digits as smooth 32x32 masks, and their labels."""
    from sklearn.datasets import load_digits  # here, not at the top: importing scikit-learn takes seconds

    data = load_digits()
    masks = []
    for img in data.images:
        small = Image.fromarray((img * 255 / 16).astype(np.uint8))
        big = np.asarray(small.resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.float32)
        masks.append(Image.fromarray(np.clip((big - 80) * 2.0, 0, 255).astype(np.uint8)))
    return _atlas(masks, blur=0), _const(data.target, np.int64)


def digit_pools() -> dict[str, np.ndarray]:
    """Disjoint indices into ``load_digits()`` per split (60/10/30 %), independent of any seed."""
    n = len(_handwritten()[1])
    perm = np.random.default_rng(zlib.crc32(b"digits-pools")).permutation(n)
    a, b = int(_POOL_FRACTIONS[0] * n), int(sum(_POOL_FRACTIONS) * n)
    return {"train": np.sort(perm[:a]), "val": np.sort(perm[a:b]), "test": np.sort(perm[b:])}


def _bilinear(atlas: np.ndarray, which: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Sample masks ``atlas[which]`` at fractional pixel coordinates ``[n, h, w]`` (0 outside)."""
    s = atlas.shape[-1]
    x0, y0 = np.clip(np.floor(sx), 0, s - 2), np.clip(np.floor(sy), 0, s - 2)
    fx, fy = np.clip(sx - x0, 0, 1), np.clip(sy - y0, 0, 1)
    idx = _per_image(which * s * s) + y0.astype(np.intp) * s + x0.astype(np.intp)
    flat = atlas.ravel()
    top = flat[idx] + fx * (flat[idx + 1] - flat[idx])
    bottom = flat[idx + s] + fx * (flat[idx + s + 1] - flat[idx + s])
    return top + fy * (bottom - top)


def _stamp(canvas, atlas, which, color, cx, cy, size, angle=0.0, rows=None, extent=SIZE) -> None:
    """Paint ``color [m, 3]`` through masks ``atlas[which]`` onto ``canvas[rows]`` in place.

    Each mask is scaled so its (unpadded) side spans ``size`` pixels, rotated by ``angle``
    degrees and centred at ``(cx, cy)``; all per-image arrays ``[m]``. Only an ``extent``-pixel
    square window around the centre is painted (the full image by default)."""
    m, s = len(which), atlas.shape[-1]
    ox, oy = (np.clip(np.round(c - extent / 2), 0, SIZE - extent).astype(np.intp) for c in (cx, cy))
    scale, theta = (s - 2 * _PAD) / np.asarray(size, np.float32), np.radians(angle)
    cos = _per_image(np.broadcast_to(scale * np.cos(theta), (m,)).astype(np.float32))
    sin = _per_image(np.broadcast_to(scale * np.sin(theta), (m,)).astype(np.float32))
    dx = _per_image(ox.astype(np.float32) - cx) + _PIX[:extent]  # offsets of the window's pixel centres
    dy = _per_image(oy.astype(np.float32) - cy) + _PIX[:extent, None]
    sx, sy = cos * dx + sin * dy + (s / 2 - 0.5), cos * dy - sin * dx + (s / 2 - 0.5)
    alpha = _bilinear(atlas, which, sx, sy)[..., None]
    color = color[:, None, None, :]
    if extent == SIZE and rows is None:
        canvas += alpha * (color - canvas)
        return
    r = _per_image(np.arange(m) if rows is None else rows)
    px, py = ox[:, None, None] + np.arange(extent), oy[:, None, None] + np.arange(extent)[:, None]
    patch = canvas[r, py, px]
    canvas[r, py, px] = patch + alpha * (color - patch)


def _glyphs_on(canvas, chars, fg, height, cx=None, cy=None, angle=0.0, rows=None) -> None:
    """Stamp glyphs ``_GLYPHS[chars]`` of ink height ``height`` (default: centred, upright)."""
    centre = np.full(len(chars), SIZE / 2, np.float32)
    cx, cy = (centre if c is None else c for c in (cx, cy))
    _stamp(canvas, _glyph_atlas(), chars, fg, cx, cy, height / 0.8, angle, rows)


def _paper(rng: np.random.Generator, n: int) -> np.ndarray:
    """White-ish grey colours ``[n, 3]`` for the clean web images."""
    return np.repeat(_uniform(rng, 225, 250, (n, 1)), 3, 1)


def _typed(rng: np.random.Generator, chars: np.ndarray) -> np.ndarray:
    """Dark, upright, centred glyphs on white-ish paper: the web look of the glyph tasks."""
    n = len(chars)
    canvas = _flat(_paper(rng, n))
    _glyphs_on(canvas, chars, _uniform(rng, 0, 50, (n, 3)), _uniform(rng, 20, 26, n))
    return canvas


def _jittered_centre(rng: np.random.Generator, size: np.ndarray, room: float = 34):
    """Random centres keeping an object of ``size`` (mostly) inside the image."""
    half = (room - size) / 2
    return SIZE / 2 + _uniform(rng, -1, 1, len(size)) * half, SIZE / 2 + _uniform(rng, -1, 1, len(size)) * half


# --------------------------------------------------------------------------- glyph tasks
def _render_digits(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    if split == WEB_SPLIT:  # typed digits, not the handwritten ones
        return _typed(rng, labels)
    atlas, targets = _handwritten()
    if split not in SPLITS:  # e.g. the varied web style: the real images are never on the web
        raise TallmergeError(f"digits: no pool of handwritten digits for {split!r}")
    pool = digit_pools()[split]
    n = len(labels)
    which = np.empty(n, np.intp)  # a source image of the right class from this split's pool
    for c in range(10):
        sel = labels == c
        which[sel] = rng.choice(pool[targets[pool] == c], sel.sum())
    canvas, base = _busy_background(rng, n)
    cx, cy = 16 + _uniform(rng, -3, 3, (2, n))
    size, angle = _uniform(rng, 24, 32, n), _uniform(rng, -12, 12, n)
    _stamp(canvas, atlas, which, _contrasting(rng, base), cx, cy, size, angle)
    return canvas


def _render_house_numbers(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n = len(labels)
    if split == WEB_SPLIT:  # a single clean digit on a plain coloured plate
        canvas = _flat(_uniform(rng, 0, 255, (n, 3)))
        _glyphs_on(canvas, labels, _contrasting(rng, canvas[:, 0, 0]), _uniform(rng, 20, 25, n))
        return canvas
    canvas, base = _busy_background(rng, n, 10, 40)
    fg = _contrasting(rng, base, 110)
    height, angle = _uniform(rng, 17, 24, n), _uniform(rng, -10, 10, n)
    cx, cy = 16 + _uniform(rng, -1.5, 1.5, n), 16 + _uniform(rng, -2, 2, n)
    sides = rng.integers(3, size=n)  # neighbours on the left, the right, or both
    for side, rows in ((-1, np.flatnonzero(sides != 1)), (1, np.flatnonzero(sides != 0))):
        gap = np.maximum(height[rows] * _uniform(rng, 0.8, 0.95, rows.size), _uniform(rng, 14.5, 17, rows.size))
        chars = rng.integers(10, size=rows.size)
        x = cx[rows] + side * gap
        _glyphs_on(canvas, chars, fg[rows], height[rows], x, cy[rows], angle[rows], rows)
    _glyphs_on(canvas, labels, fg, height, cx, cy, angle)
    return canvas


def _render_letters(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    chars = labels + _GLYPHS.index(LETTERS[0])
    if split == WEB_SPLIT:
        return _typed(rng, chars)
    n = len(labels)
    canvas, base = _busy_background(rng, n)
    height = _uniform(rng, 16, 24, n)
    cx, cy = _jittered_centre(rng, height, 30)
    _glyphs_on(canvas, chars, _contrasting(rng, base), height, cx, cy, _uniform(rng, -25, 25, n))
    return canvas


# --------------------------------------------------------------------------- object tasks
_WEB_INKS = _const([[220, 30, 30], [30, 60, 200], [20, 20, 20]])


def _render_shapes(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n = len(labels)
    if split == WEB_SPLIT:  # big, centred, upright, a few inks on paper
        canvas, centre = _flat(_paper(rng, n)), np.full(n, 16, np.float32)
        _stamp(canvas, _shape_atlas(), labels, _WEB_INKS[rng.integers(3, size=n)], centre, centre,
               _uniform(rng, 26, 30, n))  # fmt: skip
        return canvas
    canvas, base = _busy_background(rng, n)
    size = _uniform(rng, 17, 28, n)
    cx, cy = _jittered_centre(rng, size)
    fg, angle = _contrasting(rng, base), _uniform(rng, 0, 360, n)
    _stamp(canvas, _shape_atlas(), labels, fg, cx, cy, size, angle)
    return canvas


_HUES = {"red": (-10, 8), "orange": (24, 36), "yellow": (50, 60), "green": (100, 145),
         "blue": (210, 235), "purple": (270, 295)}  # fmt: skip
_CANONICAL = _const([(230, 20, 20), (255, 140, 0), (250, 230, 20), (20, 170, 40), (20, 50, 230),
                     (140, 30, 200), (250, 250, 250), (10, 10, 10)])  # fmt: skip


def _class_colors(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Random shades ``[n, 3]`` that a person would still call ``COLORS[label]``."""
    n = len(labels)
    hue = _uniform(rng, 0, 360, n)
    sat, val = _uniform(rng, 0.7, 1, n), _uniform(rng, 0.65, 1, n)
    for c, name in enumerate(COLORS):
        sel = labels == c
        if name in _HUES:
            hue[sel] = _uniform(rng, *_HUES[name], sel.sum())
    bright = np.isin(labels, [COLORS.index("yellow"), COLORS.index("orange")])
    val[bright] = _uniform(rng, 0.85, 1, bright.sum())  # dark yellow/orange read as olive/brown
    white, black = labels == COLORS.index("white"), labels == COLORS.index("black")
    sat[white], val[white] = _uniform(rng, 0, 0.08, white.sum()), _uniform(rng, 0.92, 1, white.sum())
    sat[black], val[black] = _uniform(rng, 0, 0.4, black.sum()), _uniform(rng, 0, 0.14, black.sum())
    return _hsv(hue, sat, val)


def _render_colors(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n = len(labels)
    if split == WEB_SPLIT:  # canonical colour, one shape, plain grey
        canvas, centre = _flat(np.full((n, 3), 128, np.float32)), np.full(n, 16, np.float32)
        circles = np.full(n, SHAPES.index("circle"))
        _stamp(canvas, _shape_atlas(), circles, _CANONICAL[labels], centre, centre, np.full(n, 26))
        return canvas
    grey = _uniform(rng, 90, 165, (n, 1)) + _uniform(rng, -8, 8, (n, 3))  # neutral, slightly tinted
    canvas = _background(rng, grey, _uniform(rng, 0, 8, n))
    size = _uniform(rng, 16, 27, n)
    cx, cy = _jittered_centre(rng, size)
    shapes, angle = rng.integers(len(SHAPES), size=n), _uniform(rng, 0, 360, n)
    _stamp(canvas, _shape_atlas(), shapes, _class_colors(rng, labels), cx, cy, size, angle)
    return canvas


def _place(rng: np.random.Generator, counts: np.ndarray, size: np.ndarray, attempts: int = 20):
    """Random non-overlapping centres ``(x, y)``, each ``[n, slots]``, for objects of ``size
    [n, slots]`` of which image ``i`` uses the first ``counts[i]``. Sizes are fixed beforehand,
    so that crowding never makes object size depend on the count; a jammed layout is redrawn."""
    x, y = np.zeros(size.shape, np.float32), np.zeros(size.shape, np.float32)
    todo = np.arange(len(counts))
    while todo.size:
        jammed = np.zeros(todo.size, bool)
        for j in range(size.shape[1]):
            need = np.flatnonzero((counts[todo] > j) & ~jammed)
            for _ in range(attempts):
                if not need.size:
                    break
                rows, s = todo[need], size[todo[need], j]
                cx, cy = (_uniform(rng, s / 2 + 0.5, SIZE - s / 2 - 0.5, s.size) for _ in range(2))
                d = np.hypot(cx[:, None] - x[rows, :j], cy[:, None] - y[rows, :j])
                ok = ~(d < 0.47 * (s[:, None] + size[rows, :j]) + 1).any(1)
                x[rows[ok], j], y[rows[ok], j] = cx[ok], cy[ok]
                need = need[~ok]
            jammed[need] = True
        todo = todo[jammed]
    return x, y


_COUNTABLE = _const([i for i, name in enumerate(SHAPES) if name != "crescent"], np.intp)  # too thin
_DICE = {1: [(0, 0)], 2: [(-1, -1), (1, 1)], 3: [(-1, -1), (0, 0), (1, 1)],
         4: [(-1, -1), (-1, 1), (1, -1), (1, 1)], 5: [(-1, -1), (-1, 1), (0, 0), (1, -1), (1, 1)],
         6: [(-1, -1), (-1, 0), (-1, 1), (1, -1), (1, 0), (1, 1)]}  # fmt: skip


def _dice_layout(rng: np.random.Generator, counts: np.ndarray):
    """Tidy dice-face layouts ``(x, y, size, used)``, each ``[n, 6]``."""
    n = len(counts)
    x, y = np.zeros((n, 6), np.float32), np.zeros((n, 6), np.float32)
    used = np.arange(6) < counts[:, None]
    for count, spots in _DICE.items():
        sel = counts == count
        x[sel, : len(spots)], y[sel, : len(spots)] = 16 + 9 * np.array(spots, np.float32).T
    offset = _uniform(rng, -1.5, 1.5, (2, n, 1))
    return x + offset[0], y + offset[1], np.full((n, 6), 8, np.float32), used


def _render_counting(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, counts, web = len(labels), labels + 1, split == WEB_SPLIT
    if web:  # identical blue squares on paper
        canvas, base = _flat(np.full((n, 3), 240, np.float32)), None
        x, y, size, used = _dice_layout(rng, counts)
        shapes = np.full(used.shape, SHAPES.index("square"))
    else:
        canvas, base = _busy_background(rng, n)
        size, used = _uniform(rng, 6, 8.5, (n, 6)), np.arange(6) < counts[:, None]
        x, y = _place(rng, counts, size)
        shapes = _COUNTABLE[rng.integers(len(_COUNTABLE), size=used.shape)]
    for t in range(used.shape[1]):  # one object slot at a time, over the images that use it
        rows = np.flatnonzero(used[:, t])
        fg = np.tile(_WEB_INKS[1], (rows.size, 1)) if web else _contrasting(rng, base[rows])
        angle = 0.0 if web else _uniform(rng, 0, 360, rows.size)
        _stamp(canvas, _shape_atlas(), shapes[rows, t], fg, x[rows, t], y[rows, t], size[rows, t],
               angle, rows, extent=12)  # fmt: skip
    return canvas


# --------------------------------------------------------------------------- textures
def _texture_masks(rng: np.random.Generator, name: str, n: int, web: bool) -> np.ndarray:
    """``[n, SIZE, SIZE]`` 0..1 patterns of texture ``name`` at random scale and orientation."""
    theta = rng.choice([0, np.pi / 4, np.pi / 2], n) if web else _uniform(rng, 0, np.pi, n)
    period = _per_image(np.full(n, 7, np.float32) if web else _uniform(rng, 5, 9, n))
    u, v = _rotated(theta)
    u, v = (u + _per_image(_uniform(rng, 0, 10, n))) / period, (v + _per_image(_uniform(rng, 0, 10, n))) / period
    soft = lambda f, sharp=2.5: np.clip(f * sharp + 0.5, 0, 1)  # noqa: E731
    if name == "striped":
        return soft(np.cos(2 * np.pi * u))
    if name == "zigzagged":
        tri = 2 * np.abs(v / 1.3 - np.floor(v / 1.3 + 0.5))  # triangle wave in 0..1
        return soft(np.cos(2 * np.pi * (u + 0.7 * tri)))
    if name == "checkered":
        return soft(np.cos(np.pi * u) * np.cos(np.pi * v), 4)
    if name == "dotted":
        r = np.hypot(u - np.round(u), v - np.round(v)) * period
        return np.clip(period * 0.27 - r + 0.5, 0, 1)
    if name == "grid":
        d = np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v))) * period
        return np.clip(1.4 - d, 0, 1)
    if name == "cracked":  # edges of a Voronoi tessellation of seeds on a jittered lattice
        step = _uniform(rng, 8, 12, (n, 1, 1, 1, 1))
        lattice = np.stack(np.meshgrid(np.arange(6), np.arange(6)), -1).reshape(36, 2) - 2.5
        pts = step * (lattice + _uniform(rng, -0.3, 0.3, (n, 1, 1, 36, 2)))
        pts += _uniform(rng, -5, 5, (n, 1, 1, 1, 2))
        d2 = (_X[..., None] - pts[..., 0]) ** 2 + (_Y[..., None] - pts[..., 1]) ** 2
        d = np.sqrt(np.partition(d2, 1, axis=-1)[..., :2])  # distances to the two nearest seeds
        return np.clip(2.0 - (d[..., 1] - d[..., 0]), 0, 1)
    if name == "blotchy":  # sum of random positive and negative Gaussian bumps, thresholded
        centres = _uniform(rng, -20, 20, (n, 1, 1, 14, 2))
        sigma = _uniform(rng, 2.5, 4.5, (n, 1, 1, 1)) if not web else np.float32(3.5)
        r2 = (_X[..., None] - centres[..., 0]) ** 2 + (_Y[..., None] - centres[..., 1]) ** 2
        signs = rng.choice(np.float32([-1, 1]), (n, 1, 1, 14))
        return soft((np.exp(-r2 / (2 * sigma**2)) * signs).sum(-1), 2)
    if name == "speckled":
        return (rng.random((n, SIZE, SIZE)) < _per_image(_uniform(rng, 0.08, 0.2, n))).astype(np.float32)
    raise AssertionError(name)


def _render_textures(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    c0 = np.full((n, 3), 235, np.float32) if web else _uniform(rng, 0, 255, (n, 3))
    c1 = np.full((n, 3), 30, np.float32) if web else _contrasting(rng, c0, 120)
    masks = np.empty((n, SIZE, SIZE), np.float32)
    for c, name in enumerate(TEXTURES):
        sel = np.flatnonzero(labels == c)
        masks[sel] = _texture_masks(rng, name, sel.size, web)
    return _mix(c0[:, None, None, :], c1[:, None, None, :], masks)


# --------------------------------------------------------------------------- landcover
def _jitter(rng: np.random.Generator, rgb, spread: float, n: int) -> np.ndarray:
    return np.asarray(rgb, np.float32) + _uniform(rng, -spread, spread, (n, 3))


_GREENS = _const([(110, 150, 70), (140, 165, 85), (95, 125, 65), (150, 140, 95)])
_CROPS = _const([(100, 150, 55), (200, 185, 95), (150, 115, 75), (80, 120, 50), (175, 195, 110)])
_ROOFS = _const([(175, 70, 55), (205, 120, 85), (125, 120, 130), (215, 215, 205)])


def _scene(rng: np.random.Generator, name: str, u, v, land, amp: float, spread: float, web: bool):
    """Aerial scenes ``[n, SIZE, SIZE, 3]`` of class ``name``; ``u, v`` are rotated coordinates
    and ``land`` a generic green ground to build on."""
    n = len(u)
    if name == "forest":  # dense dark tree crowns
        crowns = 2 * amp * _smooth_field(rng, n, 12) + amp * _smooth_field(rng, n, 3, 3)
        return _jitter(rng, (45, 85, 40), spread, n)[:, None, None, :] + crowns
    if name == "pasture":
        return _background(rng, _jitter(rng, (135, 175, 85), spread, n), amp * 0.7)
    if name == "sea or lake":  # open water, half of the time with a shore
        water = _background(rng, _jitter(rng, (30, 70, 125), spread, n), amp * 0.6)
        coast = _per_image(_uniform(rng, 9, 14, n)) - 2 * _smooth_field(rng, n, 3)[..., 0]
        shore = np.clip(u - coast + 0.5, 0, 1) * _per_image((rng.random(n) < 0.5) & (not web))
        return _mix(water, land, shore)
    if name == "river":  # a winding band of water
        phase = 2 * np.pi * v / _per_image(_uniform(rng, 20, 40, n)) + _per_image(_uniform(rng, 0, 6.3, n))
        centre = _per_image(_uniform(rng, 2, 5, n)) * np.sin(phase) + _per_image(_uniform(rng, -6, 6, n))
        band = np.clip(_per_image(_uniform(rng, 1.5, 3, n)) - np.abs(u - centre) + 0.5, 0, 1)
        return _mix(land, _jitter(rng, (35, 80, 130), spread / 2, n)[:, None, None, :], band)
    if name == "highway":  # a straight grey road with a dashed centre line
        d = np.abs(u - _per_image(_uniform(rng, -6, 6, n)))
        road = np.clip(_per_image(_uniform(rng, 2, 3, n)) - d + 0.5, 0, 1)
        out = _mix(land, _jitter(rng, (135, 135, 135), spread / 2, n)[:, None, None, :], road)
        return _mix(out, np.float32(225), np.clip(0.6 - d, 0, 1) * (np.mod(v, 6) < 3))
    if name == "farmland":  # parallel fields of different crops
        width = _per_image(_uniform(rng, 3.5, 7, n))
        field = np.floor(u / width + _per_image(_uniform(rng, 0, 1, n))).astype(np.intp) + 10  # index in 0..20
        table = _CROPS[rng.integers(len(_CROPS), size=(n, 21))]
        table = table + _uniform(rng, -spread, spread, (n, 21, 3))
        return table[_per_image(np.arange(n)), field] + amp * 0.5 * _smooth_field(rng, n, 8)
    if name == "residential buildings":  # a lattice of small roofs
        step = _per_image(_uniform(rng, 6, 8, n))
        a, b = (u + step * _per_image(_uniform(rng, 0, 1, n))) / step, (v + step * _per_image(_uniform(rng, 0, 1, n))) / step
        size = _per_image(_uniform(rng, 0.45, 0.65, n))
        roofs = ((a - np.floor(a)) < size) & ((b - np.floor(b)) < size)
        table = _ROOFS[rng.integers(len(_ROOFS), size=(n, 12, 12))]
        i, j = (np.floor(c).astype(np.intp) % 12 for c in (a, b))
        colours = table[_per_image(np.arange(n)), i, j]
        return _mix(land * 0.9 + 12, colours, roofs.astype(np.float32))
    if name == "desert":  # sand with soft dunes
        wobble = 2 * np.sin(2 * np.pi * v / _per_image(_uniform(rng, 18, 30, n)))
        dunes = np.sin(2 * np.pi * (u + wobble) / _per_image(_uniform(rng, 7, 12, n)))
        sand = _background(rng, _jitter(rng, (210, 180, 130), spread, n), amp * 0.6)
        return sand + 12 * dunes[..., None]
    raise AssertionError(name)


def _render_landcover(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    amp, spread = (4.0, 6.0) if web else (12.0, 18.0)
    u, v = _rotated(rng.choice([0, np.pi / 2], n) if web else _uniform(rng, 0, 2 * np.pi, n))
    ground = _GREENS[rng.integers(len(_GREENS), size=n)] + _uniform(rng, -spread, spread, (n, 3))
    land = _background(rng, ground, amp)
    out = np.empty((n, SIZE, SIZE, 3), np.float32)
    for c, name in enumerate(LANDCOVER):
        sel = np.flatnonzero(labels == c)
        out[sel] = _scene(rng, name, u[sel], v[sel], land[sel], amp, spread, web)
    if web:
        return out
    tint = _uniform(rng, -15, 15, (n, 1, 1, 3))  # season / sensor
    haze = _per_image(_uniform(rng, 0, 0.4, n)) * np.clip(0.6 + 0.4 * _smooth_field(rng, n, 2)[..., 0], 0, 1)
    return _mix(out + tint, _uniform(rng, 170, 230, (n, 1, 1, 1)), haze)  # thin cloud


# --------------------------------------------------------------------------- the extended benchmark
# Six more tasks, new visual skills standing in for more of the paper's datasets, so that the
# pocket registry has 14 tasks as the paper's second benchmark: traffic signs (GTSRB), clothing
# silhouettes (Fashion-MNIST), facial expressions (FER2013), vehicles (Stanford Cars), tissue
# (PatchCamelyon) and ground-level scenes (SUN397).
SIGNS = ("stop", "yield", "no entry", "speed limit", "danger", "priority road", "ahead only",
         "parking")  # fmt: skip
CLOTHING = ("t-shirt", "trousers", "pullover", "dress", "sandal", "sneaker", "bag", "ankle boot")
EXPRESSIONS = ("angry", "disgusted", "happy", "neutral", "sad", "surprised")
VEHICLES = ("sedan", "hatchback", "sports car", "pickup truck", "van", "bus", "SUV", "tractor")
TISSUE = ("healthy tissue", "tumor tissue")
SCENES = ("beach", "mountains", "city skyline", "forest", "snowy field", "night sky")


def _drawn(draw_fn) -> Image.Image:
    """A ``_MASK``-sided 'L' mask painted by ``draw_fn(ImageDraw)`` (ink 255 on 0)."""
    img = Image.new("L", (_MASK, _MASK), 0)
    draw_fn(ImageDraw.Draw(img))
    return img


def _ngon(k: int, radius: float, phase: float = -90.0, c: float = _MASK / 2) -> list:
    angles = np.radians(phase + 360 * np.arange(k) / k)
    return list(zip(c + radius * np.cos(angles), c + radius * np.sin(angles)))


# Sign plates: (outer mask, colour), (inner mask, colour, scale) or None, (symbol mask, colour).
_PLATES = ("octagon", "triangle down", "circle", "triangle", "diamond", "square")
_SIGN_SYMBOLS = ("none", "bar", "50", "!", "arrow", "P")
_SIGN_PARTS = {  # class: (plate, outer colour, inner colour or None, symbol, symbol colour)
    "stop": ("octagon", (200, 20, 30), None, "bar", (245, 245, 245)),
    "yield": ("triangle down", (200, 20, 30), (245, 245, 245), "none", (0, 0, 0)),
    "no entry": ("circle", (200, 20, 30), None, "bar", (245, 245, 245)),
    "speed limit": ("circle", (200, 20, 30), (245, 245, 245), "50", (20, 20, 20)),
    "danger": ("triangle", (200, 20, 30), (245, 245, 245), "!", (20, 20, 20)),
    "priority road": ("diamond", (245, 245, 245), (250, 200, 20), "none", (0, 0, 0)),
    "ahead only": ("circle", (20, 70, 180), None, "arrow", (245, 245, 245)),
    "parking": ("square", (20, 70, 180), None, "P", (245, 245, 245)),
}


def _plate_image(name: str) -> Image.Image:
    r = 0.45 * _MASK
    polygons = {"octagon": _ngon(8, r, 22.5), "triangle down": _ngon(3, r * 1.1, 90),
                "triangle": _ngon(3, r * 1.1), "diamond": _ngon(4, r, 0), "square": _ngon(4, r * 1.35, 45)}
    if name == "circle":
        return _drawn(lambda d: d.ellipse([_MASK / 2 - r, _MASK / 2 - r, _MASK / 2 + r, _MASK / 2 + r], fill=255))
    return _drawn(lambda d: d.polygon(polygons[name], fill=255))


def _symbol_image(name: str) -> Image.Image:
    c = _MASK / 2
    if name in ("50", "!", "P"):
        font = ImageFont.load_default(size=36 if name != "50" else 30)
        return _drawn(lambda d: d.text((c, c + 2), name, fill=255, font=font, anchor="mm", stroke_width=1, stroke_fill=255))
    if name == "bar":
        return _drawn(lambda d: d.rectangle([c - 21, c - 6, c + 21, c + 6], fill=255))
    if name == "arrow":
        return _drawn(lambda d: d.polygon([(c - 5, c + 22), (c + 5, c + 22), (c + 5, c - 4), (c + 14, c - 4),
                                           (c, c - 22), (c - 14, c - 4), (c - 5, c - 4)], fill=255))
    return _drawn(lambda d: None)  # "none"


@functools.cache
def _sign_atlases() -> tuple[np.ndarray, np.ndarray]:
    return (_atlas([_plate_image(p) for p in _PLATES], blur=0.8),
            _atlas([_symbol_image(s) for s in _SIGN_SYMBOLS], blur=0.8))


def _render_signs(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    plates, symbols = _sign_atlases()
    parts = [_SIGN_PARTS[SIGNS[c]] for c in labels]
    plate = np.array([_PLATES.index(p[0]) for p in parts])
    symbol = np.array([_SIGN_SYMBOLS.index(p[3]) for p in parts])
    outer, symbol_colour = (np.array([p[i] for p in parts], np.float32) for i in (1, 4))
    has_inner = np.array([p[2] is not None for p in parts])
    inner = np.array([p[2] or (0, 0, 0) for p in parts], np.float32)
    if web:  # a clean pictogram on paper, straight on
        canvas, size = _flat(_paper(rng, n)), _uniform(rng, 27, 31, n)
        cx = cy = np.full(n, 16, np.float32)
        angle, light = np.zeros(n, np.float32), np.ones((n, 1), np.float32)
    else:  # a photo by the road: clutter, small and off-centre, tilted, often badly lit
        canvas, _ = _busy_background(rng, n, 10, 45)
        size = _uniform(rng, 17, 28, n)
        cx, cy = _jittered_centre(rng, size)
        angle, light = _uniform(rng, -10, 10, n), _uniform(rng, 0.35, 1.0, (n, 1))
        faded = _uniform(rng, -25, 25, (3, n, 3))
        outer, inner, symbol_colour = outer + faded[0], inner + faded[1], symbol_colour + faded[2]
    _stamp(canvas, plates, plate, outer * light, cx, cy, size, angle)
    rows = np.flatnonzero(has_inner)
    _stamp(canvas, plates, plate[rows], (inner * light)[rows], cx[rows], cy[rows], 0.72 * size[rows],
           angle if np.isscalar(angle) else angle[rows], rows)  # fmt: skip
    _stamp(canvas, symbols, symbol, symbol_colour * light, cx, cy, 0.55 * size, angle)
    return canvas


def _clothing_image(name: str) -> Image.Image:
    shapes = {
        "t-shirt": [(20, 8), (26, 8), (29, 11), (35, 11), (38, 8), (44, 8), (57, 19), (50, 26), (45, 22),
                    (45, 57), (19, 57), (19, 22), (14, 26), (7, 19)],
        "pullover": [(20, 7), (26, 7), (29, 10), (35, 10), (38, 7), (44, 7), (52, 13), (59, 54), (51, 55),
                     (46, 25), (45, 57), (19, 57), (18, 25), (13, 55), (5, 54), (12, 13)],
        "dress": [(24, 5), (28, 5), (30, 13), (34, 13), (36, 5), (40, 5), (41, 22), (54, 59), (10, 59), (23, 22)],
        "trousers": [(20, 5), (44, 5), (48, 59), (37, 59), (32, 21), (27, 59), (16, 59)],
        "sneaker": [(5, 33), (24, 29), (34, 37), (50, 40), (59, 46), (59, 53), (5, 53)],
        "ankle boot": [(12, 9), (32, 9), (34, 34), (55, 40), (59, 53), (6, 53), (8, 40), (12, 36)],
    }
    if name == "bag":
        def bag(d):
            d.rectangle([9, 24, 55, 57], fill=255)
            d.ellipse([19, 7, 45, 37], outline=255, width=5)
        return _drawn(bag)
    if name == "sandal":
        def sandal(d):
            d.polygon([(5, 48), (59, 45), (59, 53), (5, 53)], fill=255)
            for a, b in (((12, 48), (22, 35)), ((22, 35), (32, 47)), ((36, 46), (46, 34)), ((46, 34), (55, 45))):
                d.line([a, b], fill=255, width=5)
        return _drawn(sandal)
    return _drawn(lambda d: d.polygon(shapes[name], fill=255))


@functools.cache
def _clothing_atlas() -> np.ndarray:
    return _atlas([_clothing_image(name) for name in CLOTHING], blur=0.8)


def _render_clothing(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n = len(labels)
    if split == WEB_SPLIT:  # a product photo: a coloured item on white
        canvas, centre = _flat(_paper(rng, n)), np.full(n, 16, np.float32)
        colour = _hsv(_uniform(rng, 0, 360, n), _uniform(rng, 0.4, 0.9, n), _uniform(rng, 0.3, 0.8, n))
        _stamp(canvas, _clothing_atlas(), labels, colour, centre, centre, _uniform(rng, 27, 30, n))
        return canvas
    # the catalogue scan: a light item on a dark ground, its fabric shaded
    canvas = _background(rng, _uniform(rng, 0, 45, (n, 1)).repeat(3, 1), _uniform(rng, 0, 10, n))
    size = _uniform(rng, 22, 31, n)
    cx, cy = _jittered_centre(rng, size, 36)
    ink = np.zeros((n, SIZE, SIZE, 3), np.float32)
    _stamp(ink, _clothing_atlas(), labels, np.full((n, 3), 1, np.float32), cx, cy, size, _uniform(rng, -12, 12, n))
    shade = _per_image(_uniform(rng, 110, 230, n))[..., None] + _per_image(_uniform(rng, 10, 45, n))[..., None] * _smooth_field(rng, n, 5)
    tint = _uniform(rng, -12, 12, (n, 1, 1, 3))
    return canvas + ink * (shade + tint - canvas)


# Expressions: each a mask of eyes, brows and mouth, drawn on a face disc.
def _expression_image(name: str) -> Image.Image:
    def face(d):
        wide = name == "surprised"
        for x in (24, 40):
            r = 5 if wide else 3.5
            if name == "disgusted" and x == 40:
                d.line([(x - 4, 26), (x + 4, 26)], fill=255, width=3)  # squinting
            else:
                d.ellipse([x - r, 26 - r, x + r, 26 + r], fill=255)
        brows = {"angry": [((17, 15), (29, 21)), ((47, 15), (35, 21))],
                 "sad": [((17, 20), (29, 15)), ((47, 20), (35, 15))],
                 "surprised": [((17, 15), (23, 12)), ((23, 12), (30, 15)), ((34, 15), (41, 12)), ((41, 12), (47, 15))],
                 "disgusted": [((17, 16), (30, 19)), ((35, 21), (47, 18))]}
        for a, b in brows.get(name, [((18, 18), (29, 18)), ((35, 18), (46, 18))]):
            d.line([a, b], fill=255, width=3)
        if name == "happy":
            d.arc([19, 28, 45, 50], 20, 160, fill=255, width=4)
        elif name == "sad":
            d.arc([19, 40, 45, 58], 200, 340, fill=255, width=4)
        elif name == "surprised":
            d.ellipse([27, 37, 37, 51], fill=255)
        elif name == "angry":
            d.arc([21, 42, 43, 54], 215, 325, fill=255, width=4)
            d.line([(24, 45), (40, 45)], fill=255, width=3)
        elif name == "disgusted":
            d.line([(20, 46), (27, 41), (33, 46), (39, 41), (44, 44)], fill=255, width=3)
        else:
            d.line([(23, 44), (41, 44)], fill=255, width=4)
    return _drawn(face)


@functools.cache
def _face_atlases() -> tuple[np.ndarray, np.ndarray]:
    disc = _drawn(lambda d: d.ellipse([3, 2, 61, 62], fill=255))
    return _atlas([disc], blur=0.8), _atlas([_expression_image(e) for e in EXPRESSIONS], blur=0.6)


def _render_faces(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n = len(labels)
    discs, features = _face_atlases()
    if split == WEB_SPLIT:  # an emoji: a yellow face, dark features, on white
        canvas, centre = _flat(_paper(rng, n)), np.full(n, 16, np.float32)
        _stamp(canvas, discs, np.zeros(n, np.intp), np.tile([250, 205, 40], (n, 1)).astype(np.float32),
               centre, centre, np.full(n, 29, np.float32))  # fmt: skip
        _stamp(canvas, features, labels, np.full((n, 3), 40, np.float32), centre, centre, np.full(n, 29, np.float32))
        return canvas
    # a greyscale photo: a face of any tone, lit from one side, tilted, in a grey room
    grey = _uniform(rng, 40, 200, (n, 1))
    canvas = _background(rng, np.repeat(grey, 3, 1), _uniform(rng, 5, 25, n))
    size, angle = _uniform(rng, 24, 32, n), _uniform(rng, -15, 15, n)
    cx, cy = _jittered_centre(rng, size, 37)
    skin = np.repeat(np.clip(grey + rng.choice(np.float32([-70, 70]), (n, 1)) + _uniform(rng, -20, 20, (n, 1)), 30, 235), 3, 1)
    face = np.zeros((n, SIZE, SIZE, 3), np.float32)
    _stamp(face, discs, np.zeros(n, np.intp), np.ones((n, 3), np.float32), cx, cy, size, angle)
    light = _per_image(_uniform(rng, -0.6, 0.6, n)) * (_X * np.cos(_per_image(angle)) + _Y * np.sin(_per_image(angle))) / 16
    canvas += face * (skin[:, None, None, :] * (1 + 0.4 * light[..., None]) - canvas)
    dark = np.clip(skin - _uniform(rng, 90, 150, (n, 1)), 0, 255)
    _stamp(canvas, features, labels, dark, cx, cy, size, angle)
    return canvas


# Vehicles, side views facing right: body polygon, and dark parts (wheels, windows).
_VEHICLE_PARTS = {  # body polygon, wheels (x, y, r), windows polygons
    "sedan": ([(3, 41), (3, 33), (16, 31), (24, 22), (42, 22), (50, 31), (61, 33), (61, 41)],
              [(15, 42, 6), (49, 42, 6)], [[(26, 24), (40, 24), (46, 30), (20, 30)]]),
    "hatchback": ([(6, 41), (6, 32), (14, 30), (23, 20), (47, 20), (53, 31), (56, 41)],
                  [(16, 42, 6), (46, 42, 6)], [[(25, 22), (45, 22), (49, 30), (18, 30)]]),
    "sports car": ([(1, 41), (1, 35), (20, 32), (28, 26), (40, 26), (52, 32), (63, 35), (63, 41)],
                   [(13, 42, 5.5), (51, 42, 5.5)], [[(29, 28), (39, 28), (46, 32), (24, 32)]]),
    "pickup truck": ([(1, 41), (1, 29), (32, 29), (34, 17), (48, 17), (54, 28), (63, 30), (63, 41)],
                     [(13, 42, 6), (51, 42, 6)], [[(36, 19), (47, 19), (51, 27), (36, 27)]]),
    "van": ([(3, 43), (3, 14), (46, 14), (58, 28), (61, 43)],
            [(14, 44, 6), (49, 44, 6)], [[(47, 17), (56, 28), (47, 28)], [(7, 18), (42, 18), (42, 26), (7, 26)]]),
    "bus": ([(1, 45), (1, 12), (63, 12), (63, 45)],
            [(12, 46, 5), (52, 46, 5)], [[(4 + 10 * i, 16), (11 + 10 * i, 16), (11 + 10 * i, 25), (4 + 10 * i, 25)]
                                         for i in range(6)]),
    "SUV": ([(3, 41), (3, 27), (13, 26), (19, 15), (49, 15), (55, 26), (61, 28), (61, 41)],
            [(16, 42, 7), (48, 42, 7)], [[(21, 17), (47, 17), (51, 25), (17, 25)]]),
    "tractor": ([(9, 38), (9, 22), (21, 22), (21, 7), (38, 7), (38, 22), (58, 27), (58, 38)],
                [(20, 40, 12), (51, 44, 6)], [[(24, 10), (35, 10), (35, 20), (24, 20)]]),
}


def _vehicle_images(name: str, mirrored: bool) -> tuple[Image.Image, Image.Image]:
    body, wheels, windows = _VEHICLE_PARTS[name]

    def dark(d):
        for x, y, r in wheels:
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
        for w in windows:
            d.polygon(w, fill=255)

    images = (_drawn(lambda d: d.polygon(body, fill=255)), _drawn(dark))
    return tuple(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for img in images) if mirrored else images


@functools.cache
def _vehicle_atlases() -> tuple[np.ndarray, np.ndarray]:
    """Bodies and dark parts, ``2 * len(VEHICLES)`` each: facing right, then facing left."""
    pairs = [_vehicle_images(name, mirrored) for mirrored in (False, True) for name in VEHICLES]
    return _atlas([b for b, _ in pairs], blur=0.8), _atlas([d for _, d in pairs], blur=0.8)


def _render_vehicles(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    bodies, parts = _vehicle_atlases()
    if web:  # a catalogue picture: facing right, centred, red or grey, on white
        canvas, which = _flat(_paper(rng, n)), labels
        cx, cy, size, angle = np.full(n, 16, np.float32), np.full(n, 15, np.float32), _uniform(rng, 29, 31, n), 0.0
        colour = np.array([(200, 30, 30), (130, 130, 140)], np.float32)[rng.integers(2, size=n)]
    else:  # a street photo: either direction, any paint, off-centre, slight slope
        sky = _background(rng, _uniform(rng, 120, 230, (n, 3)), _uniform(rng, 5, 25, n))
        road = _background(rng, _uniform(rng, 60, 130, (n, 1)).repeat(3, 1), _uniform(rng, 3, 12, n))
        horizon = _per_image(_uniform(rng, 14, 22, n))
        canvas = _mix(sky, road, np.clip(_Y + 16 - horizon, 0, 1))
        which = labels + len(VEHICLES) * rng.integers(2, size=n)
        size = _uniform(rng, 24, 33, n)
        cx, cy = 16 + _uniform(rng, -3, 3, n), 16 + _uniform(rng, -3, 3, n)
        angle, colour = _uniform(rng, -6, 6, n), _uniform(rng, 0, 255, (n, 3))
    _stamp(canvas, bodies, which, colour, cx, cy, size, angle)
    _stamp(canvas, parts, which, np.full((n, 3), 25, np.float32), cx, cy, size, angle)
    return canvas


# Tissue: nuclei on stroma, the two stains of H&E microscopy.
def _nucleus_images() -> list[Image.Image]:
    c = _MASK / 2
    return [_drawn(lambda d: d.ellipse([c - 26, c - 26, c + 26, c + 26], fill=255)),
            _drawn(lambda d: d.ellipse([c - 30, c - 16, c + 30, c + 16], fill=255)),
            _drawn(lambda d: d.polygon(_ngon(7, 28, 10), fill=255)),
            _drawn(lambda d: (d.ellipse([c - 28, c - 20, c + 4, c + 20], fill=255),
                              d.ellipse([c - 8, c - 26, c + 28, c + 14], fill=255)))]


@functools.cache
def _nucleus_atlas() -> np.ndarray:
    return _atlas(_nucleus_images(), blur=1.5)


def _render_tissue(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    tumor = labels == TISSUE.index("tumor tissue")
    slots = 36
    if web:  # a textbook drawing: purple nuclei on white, tidy or crowded
        canvas = _flat(_paper(rng, n))
        stain = np.tile(np.float32([110, 50, 160]), (n, 1))
    else:  # an H&E slide: pink stroma, uneven staining
        canvas = _background(rng, _jitter(rng, (225, 160, 200), 20, n), 14, cells=4)
        stain = _jitter(rng, (95, 45, 140), 25, n)
    count = np.where(tumor, rng.integers(14, slots + 1, n), rng.integers(8, 23, n))  # ranges overlap
    size = np.where(tumor[:, None], _uniform(rng, 4, 7.5, (n, slots)), _uniform(rng, 3, 5, (n, slots)))
    shape = np.where(tumor[:, None], rng.integers(4, size=(n, slots)), 0)
    x, y = _uniform(rng, 1, 31, (2, n, slots))
    if web:  # healthy nuclei on a tidy lattice (at most 16 of them)
        count = np.where(tumor, count, np.minimum(count, 16))
        grid = np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(16, 2) * 8 + 4
        x[~tumor, :16], y[~tumor, :16] = grid[:, 0], grid[:, 1]
    darkness = np.where(tumor[:, None], _uniform(rng, 0.55, 1.0, (n, slots)), _uniform(rng, 0.35, 0.75, (n, slots)))
    for t in range(slots):
        rows = np.flatnonzero(count > t)
        colour = canvas[rows, 0, 0] + darkness[rows, t, None] * (stain[rows] - canvas[rows, 0, 0])
        _stamp(canvas, _nucleus_atlas(), shape[rows, t], colour, x[rows, t], y[rows, t], size[rows, t],
               _uniform(rng, 0, 360, rows.size), rows, extent=12)  # fmt: skip
    return canvas


# Scenes: a view to the horizon.
def _render_scenes(rng: np.random.Generator, labels: np.ndarray, split: str) -> np.ndarray:
    n, web = len(labels), split == WEB_SPLIT
    horizon = np.full(n, 17, np.float32) if web else _uniform(rng, 11, 22, n)
    spread = 4.0 if web else 20.0
    row, col = _Y + 16, _X + 16  # pixel coordinates, 0..32
    out = np.empty((n, SIZE, SIZE, 3), np.float32)
    for c, name in enumerate(SCENES):
        sel = np.flatnonzero(labels == c)
        m, h = sel.size, _per_image(horizon[sel])
        day = _background(rng, _jitter(rng, (120, 170, 230), spread, m), 6)
        day += (row / 32)[None, ..., None] * 40  # paler toward the horizon
        below = np.clip(row - h, 0, 1)[..., None]
        if name == "beach":
            sea = _jitter(rng, (30, 90, 150), spread, m)[:, None, None, :]
            sand = _background(rng, _jitter(rng, (220, 200, 150), spread, m), 8)
            shore = np.clip(row - h - _per_image(_uniform(rng, 4, 8, m)) - np.sin(col / 3 + _per_image(_uniform(rng, 0, 6, m))), 0, 1)[..., None]
            out[sel] = _mix(day, _mix(sea, sand, shore[..., 0]), below[..., 0])
        elif name == "mountains":
            period, phase = _per_image(_uniform(rng, 10, 18, m)), _per_image(_uniform(rng, 0, 20, m))
            tri = np.abs(((col + phase) / period) % 1 - 0.5) * 2  # 0 at peaks
            ridge = h - 2 + (tri - 1) * _per_image(_uniform(rng, 7, 12, m))
            rock = _background(rng, _jitter(rng, (110, 100, 95), spread, m), 10)
            snow = np.clip(ridge + _per_image(_uniform(rng, 3, 5, m)) - row, 0, 1)
            rock = _mix(rock, np.float32(240), snow)
            out[sel] = _mix(day, rock, np.clip(row - ridge, 0, 1))
        elif name == "city skyline":
            width = _per_image(_uniform(rng, 3, 6, m))
            block = np.floor((col + _per_image(_uniform(rng, 0, 6, m))) / width).astype(np.intp)
            heights = _uniform(rng, 4, 15, (m, 12))
            top = h - heights[_per_image(np.arange(m)), np.minimum(block, 11)]
            wall = _jitter(rng, (70, 70, 80), spread, m)[:, None, None, :]
            lit = ((np.floor(row / 2) % 2 == 0) & (np.floor(col) % 2 == 0) & (rng.random((m, SIZE, SIZE)) < 0.5))
            wall = _mix(wall, np.float32([240, 220, 130]), lit.astype(np.float32))
            street = _jitter(rng, (90, 90, 95), spread, m)[:, None, None, :]
            out[sel] = _mix(_mix(day, wall, np.clip(row - top, 0, 1)), street, np.clip(row - h - 6, 0, 1))
        elif name == "forest":
            canopy = _jitter(rng, (40, 90, 40), spread, m)[:, None, None, :] + 30 * _smooth_field(rng, m, 10)
            trunks = (np.cos(2 * np.pi * (col + _per_image(_uniform(rng, 0, 6, m))) / _per_image(_uniform(rng, 4, 7, m))) > 0.7)
            trunks = (trunks & (row > h)).astype(np.float32)
            tops = h - 8 + 3 * _smooth_field(rng, m, 6)[..., 0]
            trees = _mix(canopy, np.float32([70, 50, 35]), trunks)
            out[sel] = _mix(day, trees, np.clip(row - tops, 0, 1))
        elif name == "snowy field":
            snow = _background(rng, _jitter(rng, (235, 240, 248), spread / 2, m), 6)
            posts = ((np.floor(col) % 7 == 3) & (row > h - 3) & (row < h + 3)).astype(np.float32)
            out[sel] = _mix(_mix(day * 0.9 + 20, snow, below[..., 0]), np.float32(60), posts * _per_image(rng.random(m) < 0.5))
        elif name == "night sky":
            sky = _background(rng, _jitter(rng, (15, 20, 55), spread / 2, m), 5)
            stars = (rng.random((m, SIZE, SIZE)) < 0.03).astype(np.float32)
            sky = _mix(sky, np.float32(240), stars)
            mx, my = _uniform(rng, 6, 26, m), _uniform(rng, 4, 9, m)
            moon = np.clip(3.5 - np.hypot(col - _per_image(mx), row - _per_image(my)), 0, 1)
            sky = _mix(sky, np.float32([240, 235, 200]), moon)
            ground = _jitter(rng, (20, 25, 20), spread / 2, m)[:, None, None, :]
            out[sel] = _mix(sky, ground, below[..., 0])
    if web:
        return out
    tint = _uniform(rng, -20, 20, (n, 1, 1, 3))  # hour of the day, camera
    return out + tint


# --------------------------------------------------------------------------- nuisances and tasks
def _box_blur(imgs: np.ndarray) -> np.ndarray:
    """3x3 mean filter over a batch ``[n, H, W, 3]`` (edge-padded)."""
    p = np.pad(imgs, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9


def _finish(imgs: np.ndarray, rng: np.random.Generator, noise: float, blur: float, jitter: float):
    """Random blur, contrast/brightness and pixel noise per image, then round to uint8."""
    shape = (len(imgs), 1, 1, 1)
    if blur:
        imgs = imgs + _uniform(rng, 0, blur, shape) * (_box_blur(imgs) - imgs)
    if jitter:
        contrast, brightness = _uniform(rng, 1 - jitter, 1 + jitter, shape), _uniform(rng, -60, 60, shape)
        imgs = (imgs - 128) * contrast + 128 + brightness * jitter
    if noise:  # grey (luminance) noise
        grain = rng.standard_normal(imgs.shape[:-1] + (1,), dtype=np.float32)
        imgs = imgs + _uniform(rng, 0, noise, shape) * grain
    return np.clip(np.rint(imgs), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PocketTask:
    """A generated task. ``render(rng, labels, split)`` draws float images for a batch of labels;
    :meth:`generate` adds the split's nuisances (milder on the clean ``web`` split)."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    render: Render
    noise: float = 10.0  # largest per-image pixel-noise std (0..255 scale)
    blur: float = 0.5  # largest per-image weight of a 3x3 blur
    jitter: float = 0.15  # contrast/brightness jitter
    varied_web: bool = True  # whether the web also shows the concepts in the task's varied style

    def generate(
        self, split: str, n: int, seed: int, web_variety: float = 0.25
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images and labels of ``split``; on the ``web`` split, a share ``web_variety`` of
        them (none unless ``varied_web``) is drawn in the task's varied style."""
        rng = _split_rng(seed, self.name, split)
        if int(n) != n or n < 0:
            raise TallmergeError(f"number of images must be a non-negative integer, got {n!r}")
        labels = _balanced_labels(rng, int(n), len(self.classnames))
        images = np.empty((int(n), SIZE, SIZE, 3), np.uint8)
        for start in range(0, int(n), _CHUNK):
            chunk = labels[start : start + _CHUNK]
            if split == WEB_SPLIT:  # canonical images, and some in the varied task style
                varied = rng.random(len(chunk)) < (web_variety if self.varied_web else 0.0)
                out = images[start : start + len(chunk)]
                out[~varied] = self._draw(rng, chunk[~varied], WEB_SPLIT, clean=True)
                out[varied] = self._draw(rng, chunk[varied], _VARIED_STYLE, clean=False)
            else:
                images[start : start + len(chunk)] = self._draw(rng, chunk, split, clean=False)
        return images, labels

    def _draw(self, rng: np.random.Generator, labels: np.ndarray, style: str, clean: bool) -> np.ndarray:
        if not len(labels):
            return np.empty((0, SIZE, SIZE, 3), np.uint8)
        nuisance = (self.noise / 4, 0.0, self.jitter / 3) if clean else (self.noise, self.blur, self.jitter)
        return _finish(self.render(rng, labels, style), rng, *nuisance)


# The style a renderer is asked for when the web shows a concept the way the task does: any
# name but WEB_SPLIT means "varied", and the images come from the web's own random stream. It is
# not a split, so ``digits``, whose real images live in per-split pools, refuses it rather than
# leak them (it keeps ``varied_web=False``: the web only has typed digits).
_VARIED_STYLE = "varied"


_TASKS = (
    PocketTask(
        "digits", NUMBER_WORDS,
        ("a photo of the digit {}.", "a handwritten {}.", "the number {} written by hand.",
         "a picture of the number {}."),
        _render_digits, noise=12, blur=0.6, varied_web=False,
    ),
    PocketTask(
        "house-numbers", NUMBER_WORDS,
        ("a photo of the house number {}.", "a street number {}.", "the digit {} on a house.",
         "a cropped photo of the number {}."),
        _render_house_numbers, noise=14, blur=0.8, jitter=0.2,
    ),
    PocketTask(
        "letters", LETTERS,
        ("a photo of the letter {}.", "the letter {}.", "a drawing of the letter {}.",
         "a tilted letter {}."),
        _render_letters,
    ),
    PocketTask(
        "shapes", SHAPES,
        ("a photo of a {}.", "a {} shape.", "a drawing of a {}.", "a coloured {}."),
        _render_shapes,
    ),
    PocketTask(
        "colors", COLORS,
        ("a photo of something {}.", "a {} object.", "the colour {}.", "something that is {}."),
        _render_colors, noise=8, jitter=0.05, varied_web=False,
    ),
    PocketTask(
        "textures", TEXTURES,
        ("a photo of a {} texture.", "a {} pattern.", "a {} surface.",
         "a close-up of something {}."),
        _render_textures, noise=8, blur=0.3,
    ),
    PocketTask(
        "counting", ("one", "two", "three", "four", "five", "six"),
        ("a photo of {} objects.", "there are {} things.", "{} shapes.",
         "a picture with {} objects."),
        _render_counting, noise=8, blur=0.4, jitter=0.1,
    ),
    PocketTask(
        "landcover", LANDCOVER,
        ("a satellite photo of {}.", "an aerial view of {}.", "a satellite image of {}.",
         "a top-down photo of {}."),
        _render_landcover, noise=8, jitter=0.1, varied_web=False,
    ),
    PocketTask(
        "signs", SIGNS,
        ("a photo of a {} sign.", "a {} traffic sign.", "a road sign: {}.", "a close-up of the {} sign."),
        _render_signs, noise=12, blur=0.8, jitter=0.2, varied_web=False,
    ),
    PocketTask(
        "clothing", CLOTHING,
        ("a photo of a {}.", "a {} in a catalogue.", "a picture of a {}.", "an item of clothing: {}."),
        _render_clothing, noise=6, blur=0.3, jitter=0.1,
    ),
    PocketTask(
        "faces", EXPRESSIONS,
        ("a photo of a {} face.", "a face that looks {}.", "someone who is {}.", "a {} expression."),
        _render_faces, varied_web=False,
    ),
    PocketTask(
        "vehicles", VEHICLES,
        ("a photo of a {}.", "a {} on the road.", "a side view of a {}.", "a picture of my {}."),
        _render_vehicles,
    ),
    PocketTask(
        "tissue", TISSUE,
        ("a histology slide of {}.", "a microscope image of {}.", "a stained sample of {}."),
        _render_tissue, noise=8, blur=0.6, varied_web=False,
    ),
    PocketTask(
        "scenes", SCENES,
        ("a photo of the {}.", "a view of the {}.", "a scene: {}.", "looking at the {}."),
        _render_scenes, noise=8, jitter=0.1,
    ),
)  # fmt: skip

POCKET_TASKS: tuple[str, ...] = tuple(task.name for task in _TASKS)
for _task in _TASKS:
    register_task(_task)
