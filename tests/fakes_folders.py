"""Tiny fakes of the real datasets in their exact on-disk layouts, for ``tallmerge.tasks.folders``.

Each ``FAKES[name](root)`` writes a few small images per class under ``root`` with the same
folder names, file names and metadata formats as the real dataset (``.mat`` files with the real
variables and struct fields, split text/CSV/JSON files) and returns ``{"train": n, "test": n}``,
the sizes the reader should find. Every image is one solid colour, :func:`color` of its 0-based
label, so a test can check that each image carries the label the reader gives it. Fakes are
deterministic and write nothing but what the layout needs (plus the real datasets' stray files
that readers must skip).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

CLASSNAMES = {
    "Cars": ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"),
    "DTD": ("banded", "blotchy", "zigzagged"),
    "RESISC45": ("airplane", "baseball diamond", "wetland"),
    "SUN397": ("abbey", "bakery shop", "temple east asia"),
    "OxfordIIITPet": ("abyssinian", "american bulldog", "american pit bull terrier"),
    "Food101": ("apple pie", "baby back ribs", "waffles"),
    "RenderedSST2": ("negative", "positive"),
}
"""The class names a reader should find where a fake writes them (the others are fixed lists)."""


def color(label: int) -> tuple[int, int, int]:
    """The solid colour of every fake image of a class (distinct for the labels fakes use)."""
    return ((label * 53 + 31) % 256, (label * 97 + 71) % 256, (label * 151 + 113) % 256)


def _image(path: Path, label: int, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color(label)).save(path)  # format from the suffix: JPEG, PNG or PPM


def _text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _cell(strings: list[str]) -> np.ndarray:
    """A 1xN MATLAB cell array of strings."""
    out = np.empty((1, len(strings)), dtype=object)
    out[0, :] = strings
    return out


def write_cars(root: Path) -> dict[str, int]:
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": _cell(list(CLASSNAMES["Cars"]))})
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    splits = {  # 1-based classes, in annotation-file order
        ("cars_train", base / "devkit" / "cars_train_annos.mat"): [3, 1, 2, 1, 3, 2],
        ("cars_test", base / "cars_test_annos_withlabels.mat"): [2, 3, 1],
    }
    for (folder, mat), classes in splits.items():
        annotations = np.zeros((1, len(classes)), dtype=[(f, object) for f in fields])
        for i, cls in enumerate(classes):
            fname = f"{i + 1:05d}.jpg"
            annotations[0, i] = (
                np.uint16(1),
                np.uint16(2),
                np.uint16(13),
                np.uint16(9),
                np.uint8(cls),
                fname,
            )
            _image(base / folder / fname, cls - 1, (14, 10))
        scipy.io.savemat(mat, {"annotations": annotations})
    return {"train": 6, "test": 3}


def write_dtd(root: Path) -> dict[str, int]:
    base = root / "dtd" / "dtd"
    lists: dict[str, list[str]] = {"train1": [], "val1": [], "test1": []}
    for label, cls in enumerate(CLASSNAMES["DTD"]):
        names = [f"{cls}/{cls}_{n:04d}.jpg" for n in (3, 11, 20, 47)]
        for name in names:
            _image(base / "images" / name, label, (12, 12))
        lists["train1"].append(names[2])
        lists["val1"].append(names[0])
        lists["test1"] += [names[3], names[1]]
    (base / "images" / "banded" / ".directory").write_text("[Dolphin]\n")  # as in the real archive
    for name, lines in lists.items():
        _text(base / "labels" / f"{name}.txt", lines)
        _text(base / "labels" / f"{name.replace('1', '2')}.txt", lines[::-1])  # other partitions: unused
    return {"train": 6, "test": 6}


EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")  # fmt: skip


def write_eurosat(root: Path) -> dict[str, int]:
    for label, cls in enumerate(EUROSAT_FOLDERS):
        for n in (1, 2, 10):  # 3 per class: ceil(10%) = 1 goes to test
            _image(root / "eurosat" / "2750" / cls / f"{cls}_{n}.jpg", label)
    return {"train": 20, "test": 10}


def write_gtsrb(root: Path) -> dict[str, int]:
    base = root / "gtsrb"
    for label in (0, 1, 42):
        folder = base / "GTSRB" / "Training" / f"{label:05d}"
        names = [f"00000_{n:05d}.ppm" for n in range(2)]
        for name in names:
            _image(folder / name, label, (15, 16))
        _text(folder / f"GT-{label:05d}.csv", ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
              + [f"{name};15;16;1;1;14;15;{label}" for name in names])  # fmt: skip
    test_labels = [42, 0, 1, 1]
    images = base / "GTSRB" / "Final_Test" / "Images"
    rows = []
    for i, label in enumerate(test_labels):
        _image(images / f"{i:05d}.ppm", label, (16, 14))
        rows.append(f"{i:05d}.ppm;16;14;1;1;15;13")
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2"
    _text(images / "GT-final_test.test.csv", [header] + rows)  # the unlabelled list shipped with the images
    _text(base / "GT-final_test.csv", [f"{header};ClassId"] + [f"{r};{c}" for r, c in zip(rows, test_labels)])
    return {"train": 6, "test": 4}


def write_resisc45(root: Path) -> dict[str, int]:
    base = root / "resisc45"
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(CLASSNAMES["RESISC45"]):
        cls = name.replace(" ", "_")
        files = [f"{cls}_{n:03d}.jpg" for n in (1, 2, 3, 4)]
        for file in files:
            _image(base / "NWPU-RESISC45" / cls / file, label, (16, 16))
        lists["train"] += files[:2]
        lists["val"].append(files[2])
        lists["test"].append(files[3])
    for split, files in lists.items():
        _text(base / f"resisc45-{split}.txt", files)
    return {"train": 6, "test": 3}


def write_sun397(root: Path) -> dict[str, int]:
    base = root / "SUN397"
    keys = ["/a/abbey", "/b/bakery/shop", "/t/temple/east_asia"]
    _text(base / "ClassName.txt", keys)
    _text(base / "README.txt", ["SUN397 fake"])
    train, test = [], []
    for label, key in enumerate(keys):
        names = [f"{key}/sun_a{c}{label}.jpg" for c in "xqb"]
        for name in names:
            _image(base / name.lstrip("/"), label, (16, 12))
        train += names[:2]
        test.append(names[2])
    _text(base / "Training_01.txt", train[::-1])
    _text(base / "Testing_01.txt", test)
    _text(base / "Training_02.txt", test)  # other partitions: unused
    return {"train": 6, "test": 3}


def write_oxford_pets(root: Path) -> dict[str, int]:
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 1), ("american_pit_bull_terrier", 2, 2)]
    trainval, test = [], []
    for label, (breed, species, breed_id) in enumerate(breeds):
        for n in (100, 101, 12):
            _image(base / "images" / f"{breed}_{n}.jpg", label, (12, 8))
        trainval += [f"{breed}_{n} {label + 1} {species} {breed_id}" for n in (100, 101)]
        test.append(f"{breed}_12 {label + 1} {species} {breed_id}")
    _text(base / "annotations" / "trainval.txt", trainval)
    _text(base / "annotations" / "test.txt", test)
    return {"train": 6, "test": 3}


def write_flowers102(root: Path) -> dict[str, int]:
    base = root / "flowers-102"
    labels = [1, 102, 2, 2, 1, 102, 102, 1, 2]  # 1-based, image_00001 .. image_00009
    for i, label in enumerate(labels, 1):
        _image(base / "jpg" / f"image_{i:05d}.jpg", label - 1, (10, 12))
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    ids = {"trnid": [9, 3, 6, 1], "valid": [2, 4], "tstid": [8, 5, 7]}
    scipy.io.savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})
    return {"train": 6, "test": 3}


def write_food101(root: Path) -> dict[str, int]:
    base = root / "food-101"
    folders = [name.replace(" ", "_") for name in CLASSNAMES["Food101"]]
    _text(base / "meta" / "classes.txt", folders)
    _text(base / "meta" / "labels.txt", [name.replace("_", " ").capitalize() for name in folders])
    listing: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for label, cls in enumerate(folders):
        entries = [f"{cls}/{n}" for n in (1005649 + label, 3917 + label, 21000 + label)]
        for entry in entries:
            _image(base / "images" / f"{entry}.jpg", label, (16, 12))
        listing["train"][cls] = entries[:2]
        listing["test"][cls] = entries[2:]
    for split, content in listing.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(content))
    return {"train": 6, "test": 3}


def write_rendered_sst2(root: Path) -> dict[str, int]:
    sizes = {"train": 2, "valid": 1, "test": 3}
    for folder, n in sizes.items():
        for label, cls in enumerate(CLASSNAMES["RenderedSST2"]):
            for i in range(n):
                _image(root / "rendered-sst2" / folder / cls / f"{i:05d}.png", label, (16, 8))
    return {"train": 4, "test": 6}


FAKES = {
    "Cars": write_cars,
    "DTD": write_dtd,
    "EuroSAT": write_eurosat,
    "GTSRB": write_gtsrb,
    "RESISC45": write_resisc45,
    "SUN397": write_sun397,
    "OxfordIIITPet": write_oxford_pets,
    "Flowers102": write_flowers102,
    "Food101": write_food101,
    "RenderedSST2": write_rendered_sst2,
}


REFERENCE_FOLDERS = {  # the task-vectors code's split folders: (folder, train, test, class folders)
    "DTD": ("dtd", "train", "val", ("banded", "zigzagged")),
    "EuroSAT": ("EuroSAT_splits", "train", "test", ("AnnualCrop", "SeaLake")),
    "SUN397": ("sun397", "train", "val", ("a_abbey", "b_bakery_shop")),
}


def write_reference_split(root: Path, dataset: str) -> dict[str, int]:
    """``dataset`` in the split folders the task-vectors / TALL-mask code reads (2 train and 1
    test image per class)."""
    folder, train, test, classes = REFERENCE_FOLDERS[dataset]
    for label, cls in enumerate(classes):
        for split, count in ((train, 2), (test, 1)):
            for n in range(count):
                _image(root / folder / split / cls / f"{cls}_{split}_{n}.jpg", label)
    return {"train": 2 * len(classes), "test": len(classes)}
