"""Tests of the fourteen generated pocket tasks (tallmerge.tasks.pocket)."""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import tallmerge.tasks.pocket  # noqa: F401
except ImportError:  # package not installed yet: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tallmerge.errors import TallmergeError  # noqa: E402
from tallmerge.tasks import pocket  # noqa: E402
from tallmerge.tasks.registry import SPLITS, WEB_SPLIT, get_task  # noqa: E402

EXPECTED = {
    "digits": 10, "house-numbers": 10, "letters": 10, "shapes": 8,
    "colors": 8, "textures": 8, "counting": 6, "landcover": 8,
    "signs": 8, "clothing": 8, "faces": 6, "vehicles": 8, "tissue": 2, "scenes": 6,
}  # fmt: skip
ALL_SPLITS = (*SPLITS, WEB_SPLIT)


@functools.cache
def generate(name: str, split: str, n: int, seed: int = 0):
    """Cached generation (read-only results), so tests share the expensive calls."""
    images, labels = get_task(name).generate(split, n, seed)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def test_tasks_registered_in_order():
    assert pocket.POCKET_TASKS == tuple(EXPECTED)
    for name, k in EXPECTED.items():
        task = get_task(name)
        assert task.name == name
        assert len(task.classnames) == k == len(set(task.classnames))
        assert all(isinstance(c, str) and c.strip() == c and c for c in task.classnames)


@pytest.mark.parametrize("name", EXPECTED)
def test_templates(name):
    templates = get_task(name).templates
    assert 3 <= len(templates) <= 6 and len(set(templates)) == len(templates)
    for template in templates:
        assert template.count("{}") == 1 and template.count("{") == template.count("}") == 1
        assert template.format("x") != template


@pytest.mark.parametrize("split", ALL_SPLITS)
@pytest.mark.parametrize("name", EXPECTED)
def test_shapes_dtypes_and_balance(name, split):
    k = EXPECTED[name]
    n = 3 * k + 7  # not a multiple of k, and long enough that a shuffle is never sorted by chance
    images, labels = generate(name, split, n)
    assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1
    assert not np.array_equal(labels, np.sort(labels))  # shuffled
    assert images.std() > 10  # not blank


@pytest.mark.parametrize("name", EXPECTED)
def test_deterministic_and_seed_dependent(name):
    task = get_task(name)
    a_images, a_labels = task.generate("train", 24, 7)
    b_images, b_labels = task.generate("train", 24, 7)
    assert a_images.tobytes() == b_images.tobytes() and np.array_equal(a_labels, b_labels)
    c_images, _ = task.generate("train", 24, 8)
    assert not np.array_equal(a_images, c_images)
    empty_images, empty_labels = task.generate("val", 0, 7)
    assert empty_images.shape == (0, 32, 32, 3) and empty_labels.shape == (0,)


def _hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.sha1(img.tobytes()).digest() for img in images}


PROBE_SIZES = {"train": 600, "val": 300, "test": 300, WEB_SPLIT: 300}  # shared with the probe


@pytest.mark.parametrize("name", EXPECTED)
def test_splits_share_no_image(name):
    hashes = {split: _hashes(generate(name, split, n)[0]) for split, n in PROBE_SIZES.items()}
    for split, h in hashes.items():
        assert len(h) == PROBE_SIZES[split], f"{split} repeats an image"
    for i, a in enumerate(ALL_SPLITS):
        for b in ALL_SPLITS[i + 1 :]:
            assert not hashes[a] & hashes[b], (a, b)


def test_digit_pools_are_disjoint_and_fixed():
    pools = pocket.digit_pools()
    assert set(pools) == set(SPLITS)
    together = np.concatenate([pools[s] for s in SPLITS])
    assert len(together) == len(set(together.tolist())) == 1797
    assert [round(len(pools[s]) / 1797, 1) for s in SPLITS] == [0.6, 0.1, 0.3]
    again = pocket.digit_pools()
    assert all(np.array_equal(pools[s], again[s]) for s in SPLITS)


@pytest.mark.parametrize("split", SPLITS)
def test_digits_draw_only_from_their_own_pool(monkeypatch, split):
    """Removing every "three" from one split's pool breaks that split, and only that split."""
    pools, targets = pocket.digit_pools(), pocket._handwritten()[1]
    crippled = {s: p[targets[p] != 3] if s == split else p for s, p in pools.items()}
    monkeypatch.setattr(pocket, "digit_pools", lambda: crippled)
    for other in SPLITS:
        if other == split:
            with pytest.raises(ValueError):
                get_task("digits").generate(other, 20, 0)
        else:
            get_task("digits").generate(other, 20, 0)


@pytest.mark.parametrize("name", EXPECTED)
def test_unknown_split_and_bad_arguments(name):
    task = get_task(name)
    with pytest.raises(TallmergeError, match="'validation'"):
        task.generate("validation", 4, 0)
    with pytest.raises(TallmergeError):
        task.generate("train", -1, 0)
    with pytest.raises(TallmergeError):
        task.generate("train", 4, -3)


def _features(images: np.ndarray) -> np.ndarray:
    """Simple colour-robust features: coarse pixels, a coarse map of deviation from the image's
    median colour (a silhouette), its Fourier magnitude (shift-invariant) and a colour histogram."""
    x = images.astype(np.float32) / 255
    n = len(x)
    dev = np.linalg.norm(x - np.median(x.reshape(n, -1, 3), axis=1)[:, None, None, :], axis=-1)
    spectrum = np.abs(np.fft.fft2(dev - dev.mean((1, 2), keepdims=True)))[:, :16, :16]
    q = (images // 64).astype(np.int64)
    colour = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(n, -1)
    hist = np.stack([np.bincount(c, minlength=64) for c in colour]) / colour.shape[1]
    return np.concatenate([
        x.reshape(n, 8, 4, 8, 4, 3).mean((2, 4)).reshape(n, -1),
        dev.reshape(n, 16, 2, 16, 2).mean((2, 4)).reshape(n, -1),
        np.log1p(spectrum).reshape(n, -1),
        hist,
    ], axis=1)  # fmt: skip


# Test accuracy of the linear probe below must reach: about halfway between chance and what the
# generators gave when written (in brackets), so a task that loses its signal fails.
MIN_PROBE_ACCURACY = {
    "digits": 0.36,  # (0.61), chance 0.10
    "house-numbers": 0.48,  # (0.89)
    "letters": 0.41,  # (0.72)
    "shapes": 0.30,  # (0.48), chance 0.125
    "colors": 0.55,  # (0.95)
    "textures": 0.39,  # (0.65)
    "counting": 0.25,  # (0.33), chance 0.17
    "landcover": 0.52,  # (0.92)
    "signs": 0.44,  # (0.75)
    "clothing": 0.55,  # (0.97)
    "faces": 0.35,  # (0.53), chance 0.17
    "vehicles": 0.46,  # (0.80)
    "tissue": 0.74,  # (0.98), chance 0.50
    "scenes": 0.58,  # (1.00), chance 0.17
}


@pytest.mark.parametrize("name", EXPECTED)
def test_classes_are_separable(name):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = generate(name, "train", PROBE_SIZES["train"])
    x_test, y_test = generate(name, "test", PROBE_SIZES["test"])
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=300.0))
    probe.fit(_features(x_train), y_train)
    accuracy = probe.score(_features(x_test), y_test)
    assert accuracy >= MIN_PROBE_ACCURACY[name], f"{name}: probe accuracy {accuracy:.2f}"


def test_digits_never_renders_handwritten_images_outside_their_split_pools():
    """The varied web style is not a split: asking digits for it must fail, not leak a pool."""
    import dataclasses

    leaky = dataclasses.replace(get_task("digits"), varied_web=True)
    with pytest.raises(TallmergeError, match="no pool of handwritten digits"):
        leaky.generate("web", 16, 0, web_variety=1.0)


def test_web_variety_is_the_share_of_varied_web_images():
    """The web split's varied share follows ``web_variety``; tasks without a varied web ignore it."""
    scenes, signs = get_task("scenes"), get_task("signs")
    canonical, _ = scenes.generate("web", 64, 0, web_variety=0.0)
    default, _ = scenes.generate("web", 64, 0)
    assert np.array_equal(default, scenes.generate("web", 64, 0, web_variety=0.25)[0])
    assert not np.array_equal(canonical, default)
    assert np.array_equal(
        signs.generate("web", 64, 0, web_variety=0.0)[0], signs.generate("web", 64, 0, web_variety=1.0)[0]
    )
