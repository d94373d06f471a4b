"""Readers of the real datasets (``tallmerge.tasks.folders``) on tiny fakes in the exact layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fakes_folders import CLASSNAMES, EUROSAT_FOLDERS, FAKES, REFERENCE_FOLDERS, color, write_reference_split
from tallmerge.errors import TallmergeError
from tallmerge.tasks.folders import (
    EUROSAT_CLASSNAMES,
    FLOWERS102_CLASSNAMES,
    GTSRB_CLASSNAMES,
    LAYOUTS,
    READERS,
)

NAMES = list(READERS)
SPLITS = ("train", "test")

# (dataset, split, what to delete): a file a split list names, which must then be reported.
LISTED_FILES = [
    ("Cars", "train", "stanford_cars/cars_train/00002.jpg"),
    ("DTD", "test", "dtd/dtd/images/zigzagged/zigzagged_0047.jpg"),
    ("GTSRB", "test", "gtsrb/GTSRB/Final_Test/Images/00003.ppm"),
    ("RESISC45", "train", "resisc45/NWPU-RESISC45/wetland/wetland_002.jpg"),
    ("SUN397", "train", "SUN397/b/bakery/shop/sun_ax1.jpg"),
    ("OxfordIIITPet", "test", "oxford-iiit-pet/images/american_bulldog_12.jpg"),
    ("Flowers102", "train", "flowers-102/jpg/image_00004.jpg"),
    ("Food101", "test", "food-101/images/waffles/21002.jpg"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict[str, dict[str, int]]]:
    """All fakes under one data root, and the split sizes each writer reports."""
    root = tmp_path_factory.mktemp("data")
    return root, {name: write(root) for name, write in FAKES.items()}


def fake(tmp_path: Path, name: str) -> Path:
    """A fresh root with only ``name``'s fake, for tests that damage it."""
    FAKES[name](tmp_path)
    return tmp_path


def one_line_error(exc: pytest.ExceptionInfo, name: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    return message


def test_every_dataset_has_a_reader_layout_and_fake():
    assert set(READERS) == set(LAYOUTS) == set(FAKES)
    assert len(NAMES) == 10


@pytest.mark.parametrize("name", NAMES)
def test_reads_official_splits(data, name):
    root, counts = data
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        samples = READERS[name](root, split)
        assert len(samples) == counts[name][split]
        assert samples.labels.dtype == np.int64 and samples.labels.shape == (len(samples),)
        if name in CLASSNAMES:
            assert samples.classnames == CLASSNAMES[name]
        for i in range(len(samples)):  # every image is the solid colour of the label it is given
            image = samples.image(i)
            assert image.mode == "RGB"
            pixels = np.asarray(image, dtype=np.int64)
            assert np.abs(pixels - color(int(samples.labels[i]))).max() <= 8, (name, split, samples.paths[i])
        seen[split] = set(samples.paths)
        assert len(seen[split]) == len(samples)
    assert not seen["train"] & seen["test"]


@pytest.mark.parametrize("name", NAMES)
def test_order_does_not_depend_on_directory_listing_order(data, monkeypatch, name):
    root, _ = data
    first = {split: READERS[name](root, split) for split in SPLITS}
    listing = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(listing(self), reverse=True)))
    for split in SPLITS:
        again = READERS[name](root, split)
        assert again.paths == first[split].paths
        assert np.array_equal(again.labels, first[split].labels)
        assert again.classnames == first[split].classnames


def test_labels_follow_the_split_files(data):
    root, _ = data
    assert READERS["Cars"](root, "train").labels.tolist() == [2, 0, 1, 0, 2, 1]  # annotation order, 1-based
    assert READERS["Cars"](root, "test").labels.tolist() == [1, 2, 0]
    assert READERS["GTSRB"](root, "test").labels.tolist() == [42, 0, 1, 1]
    assert READERS["GTSRB"](root, "train").labels.tolist() == [0, 0, 1, 1, 42, 42]
    flowers = READERS["Flowers102"](root, "train")  # trnid then valid
    assert [Path(p).name for p in flowers.paths] == [f"image_0000{i}.jpg" for i in (9, 3, 6, 1, 2, 4)]
    assert flowers.labels.tolist() == [1, 1, 101, 0, 101, 1]
    dtd = READERS["DTD"](root, "train")  # train1 then val1
    assert [Path(p).name for p in dtd.paths][:3] == [
        "banded_0020.jpg",
        "blotchy_0020.jpg",
        "zigzagged_0020.jpg",
    ]
    sun = READERS["SUN397"](root, "train")
    assert sun.labels.tolist() == [2, 2, 1, 1, 0, 0]
    sst2 = READERS["RenderedSST2"](root, "test")
    assert sst2.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_fixed_class_name_lists(data):
    root, _ = data
    assert READERS["GTSRB"](root, "test").classnames == GTSRB_CLASSNAMES
    assert len(GTSRB_CLASSNAMES) == 43 == len(set(GTSRB_CLASSNAMES))
    assert GTSRB_CLASSNAMES[0] == "red and white circle 20 kph speed limit" and GTSRB_CLASSNAMES[14] == "stop"
    assert READERS["Flowers102"](root, "test").classnames == FLOWERS102_CLASSNAMES
    assert len(FLOWERS102_CLASSNAMES) == 102 == len(set(FLOWERS102_CLASSNAMES))
    assert FLOWERS102_CLASSNAMES[:3] == ("pink primrose", "hard-leaved pocket orchid", "canterbury bells")
    assert FLOWERS102_CLASSNAMES[-1] == "blackberry lily"
    eurosat = READERS["EuroSAT"](root, "train").classnames
    assert list(EUROSAT_CLASSNAMES) == sorted(EUROSAT_CLASSNAMES) == list(EUROSAT_FOLDERS)
    assert (
        eurosat[0] == "annual crop land"
        and eurosat[2] == "brushland or shrubland"
        and eurosat[9] == "lake or sea"
    )


def test_eurosat_test_split_is_a_seeded_tenth_of_each_class(data):
    root, _ = data
    train, test = (READERS["EuroSAT"](root, split) for split in SPLITS)
    assert np.bincount(test.labels, minlength=10).tolist() == [1] * 10
    assert np.bincount(train.labels, minlength=10).tolist() == [2] * 10
    files = sorted(f"AnnualCrop_{n}.jpg" for n in (1, 2, 10))
    chosen = files[np.random.default_rng(0).permutation(3)[0]]
    assert Path(test.paths[0]).name == chosen
    assert sorted(Path(p).name for p in train.paths[:2]) == sorted(set(files) - {chosen})


@pytest.mark.parametrize("name", NAMES)
def test_missing_dataset_names_the_expected_layout(tmp_path, name):
    for split in SPLITS:
        with pytest.raises(TallmergeError) as exc:
            READERS[name](tmp_path, split)
        message = one_line_error(exc, name)
        assert "not found" in message and LAYOUTS[name] in message


@pytest.mark.parametrize(("name", "split", "relative"), LISTED_FILES)
def test_missing_listed_image_is_named(tmp_path, name, split, relative):
    root = fake(tmp_path, name)
    READERS[name](root, split)
    (root / relative).unlink()
    with pytest.raises(TallmergeError) as exc:
        READERS[name](root, split)
    message = one_line_error(exc, name)
    assert str(root / relative) in message and "listed in" in message and LAYOUTS[name] in message


@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("Cars", "stanford_cars/devkit/cars_meta.mat"),
        ("DTD", "dtd/dtd/labels/val1.txt"),
        ("GTSRB", "gtsrb/GT-final_test.csv"),
        ("RESISC45", "resisc45/resisc45-train.txt"),
        ("SUN397", "SUN397/ClassName.txt"),
        ("OxfordIIITPet", "oxford-iiit-pet/annotations/test.txt"),  # class names come from both lists
        ("Flowers102", "flowers-102/setid.mat"),
        ("Food101", "food-101/meta/classes.txt"),
    ],
)
def test_missing_metadata_file_is_named(tmp_path, name, relative):
    root = fake(tmp_path, name)
    (root / relative).unlink()
    split = "test" if name == "GTSRB" else "train"
    with pytest.raises(TallmergeError) as exc:
        READERS[name](root, split)
    assert f"{root / relative} not found; expected {LAYOUTS[name]}" in one_line_error(exc, name)


@pytest.mark.parametrize(
    ("name", "split", "folder"),
    [
        ("EuroSAT", "test", "eurosat/2750/River"),
        ("GTSRB", "train", "gtsrb/GTSRB/Training/00001"),
        ("RenderedSST2", "test", "rendered-sst2/test/positive"),
    ],
)
def test_empty_class_folder_is_an_error(tmp_path, name, split, folder):
    root = fake(tmp_path, name)
    for path in (root / folder).iterdir():
        path.unlink()
    with pytest.raises(TallmergeError) as exc:
        READERS[name](root, split)
    message = one_line_error(exc, name)
    assert f"class folder {root / folder} has no" in message and LAYOUTS[name] in message


@pytest.mark.parametrize(
    ("name", "split", "damage"),
    [
        ("EuroSAT", "train", lambda root: (root / "eurosat/2750/Clouds").mkdir()),
        ("EuroSAT", "train", lambda root: shutil.rmtree(root / "eurosat/2750/Forest")),
        ("GTSRB", "train", lambda root: (root / "gtsrb/GTSRB/Training/00043").mkdir()),
        ("DTD", "train", lambda root: shutil.rmtree(root / "dtd/dtd/images/blotchy")),
        ("RESISC45", "test", lambda root: shutil.rmtree(root / "resisc45/NWPU-RESISC45/airplane")),
        ("SUN397", "test", lambda root: (root / "SUN397/ClassName.txt").write_text("/a/abbey\n")),
        (
            "Food101",
            "train",
            lambda root: (root / "food-101/meta/classes.txt").write_text("apple_pie\nwaffles\n"),
        ),
    ],
)
def test_unknown_class_is_an_error(tmp_path, name, split, damage):
    root = fake(tmp_path, name)
    damage(root)
    with pytest.raises(TallmergeError) as exc:
        READERS[name](root, split)
    assert LAYOUTS[name] in one_line_error(exc, name)


@pytest.mark.parametrize(
    ("name", "split", "relative", "content"),
    [
        ("Cars", "train", "stanford_cars/devkit/cars_train_annos.mat", b"not a mat file"),
        ("GTSRB", "test", "gtsrb/GT-final_test.csv", b"Filename;Width\n00000.ppm;16\n"),
        ("Food101", "test", "food-101/meta/test.json", b"{not json"),
        ("DTD", "test", "dtd/dtd/labels/test1.txt", b"banded_0047.jpg\n"),
        ("OxfordIIITPet", "train", "oxford-iiit-pet/annotations/trainval.txt", b"Abyssinian_100 one 1 1\n"),
        ("SUN397", "train", "SUN397/Training_01.txt", b""),
    ],
)
def test_malformed_metadata_is_named(tmp_path, name, split, relative, content):
    root = fake(tmp_path, name)
    (root / relative).write_bytes(content)
    with pytest.raises(TallmergeError) as exc:
        READERS[name](root, split)
    message = one_line_error(exc, name)
    assert str(root / relative) in message and LAYOUTS[name] in message


def test_labels_outside_the_classes_are_named(tmp_path):
    import scipy.io

    root = fake(tmp_path, "Flowers102")
    scipy.io.savemat(
        root / "flowers-102/imagelabels.mat", {"labels": np.array([[1, 103, 2, 2, 1, 3, 3, 1, 2]])}
    )
    with pytest.raises(TallmergeError) as exc:
        READERS["Flowers102"](root, "train")
    assert "imagelabels.mat has labels outside the 102 classes" in one_line_error(exc, "Flowers102")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("split", ["val", "valid", "trainval"])
def test_unknown_split_is_rejected(data, name, split):
    root, _ = data
    with pytest.raises(TallmergeError, match=f"{name}: unknown split '{split}'"):
        READERS[name](root, split)


@pytest.mark.parametrize("name", sorted(REFERENCE_FOLDERS))
def test_reference_split_folders_take_precedence(tmp_path, name):
    """DTD, EuroSAT and SUN397 in the task-vectors code's split folders: those splits are served,
    even beside the dataset's own layout."""
    FAKES[name](tmp_path)
    counts = write_reference_split(tmp_path, name)
    folder, train, test, classes = REFERENCE_FOLDERS[name]
    expected_names = {
        "DTD": ("banded", "zigzagged"),
        "EuroSAT": ("annual crop land", "lake or sea"),
        "SUN397": ("abbey", "bakery shop"),
    }[name]
    for split, sub in (("train", train), ("test", test)):
        samples = READERS[name](tmp_path, split)
        assert len(samples) == counts[split] and samples.classnames == expected_names
        assert all(str(tmp_path / folder / sub) in p for p in samples.paths)
        assert samples.labels.tolist() == sorted(samples.labels.tolist())
        for i in range(len(samples)):
            assert samples.image(i).getpixel((0, 0)) == pytest.approx(color(int(samples.labels[i])), abs=8)
    (tmp_path / folder / test / classes[0]).rename(tmp_path / folder / test / "other")
    with pytest.raises(TallmergeError, match=rf"{name}: .* has other class folders than"):
        READERS[name](tmp_path, "test")
