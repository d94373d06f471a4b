"""Tiny fakes of the array-file datasets, written in their exact on-disk layouts and formats.

Every writer takes the data root and returns ``{"train": n, "test": n}``. Content is
deterministic: :func:`images_and_labels` gives each split's images as the readers serve them
(grey ``[N, H, W]`` or RGB ``[N, H, W, 3]``) and 0-based labels, which the writers encode as the
real files do (STL10 column-major, CIFAR channel-first, SVHN's digit 0 as label 10, ...). EMNIST's
real files hold transposed digits and are served as stored, so its fake is just an idx file.
"""

from __future__ import annotations

import csv
import gzip
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import scipy.io

# name: (image shape, number of classes, images per split)
SPECS = {
    "MNIST": ((28, 28), 10, {"train": 20, "test": 10}),
    "FashionMNIST": ((28, 28), 10, {"train": 20, "test": 10}),
    "KMNIST": ((28, 28), 10, {"train": 20, "test": 10}),
    "EMNIST": ((28, 28), 10, {"train": 20, "test": 10}),
    "CIFAR10": ((32, 32, 3), 10, {"train": 20, "test": 10}),  # train: 4 per batch file
    "CIFAR100": ((32, 32, 3), 5, {"train": 15, "test": 10}),
    "SVHN": ((32, 32, 3), 10, {"train": 20, "test": 10}),
    "STL10": ((96, 96, 3), 10, {"train": 10, "test": 5}),
    "PCAM": ((96, 96, 3), 2, {"train": 6, "test": 4}),
    "FER2013": ((48, 48), 7, {"train": 14, "test": 8}),  # test: 4 PublicTest, then 4 PrivateTest
}
CIFAR100_FINE = ["apple", "aquarium_fish", "maple_tree", "pickup_truck", "sweet_pepper"]
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def images_and_labels(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (as the readers serve them) and 0-based int64 labels the fake of ``name`` holds for ``split``."""
    shape, n_classes, counts = SPECS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}/{split}".encode()))
    n = counts[split]
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)  # every class, a few times
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), labels


def _counts(name: str) -> dict[str, int]:
    return dict(SPECS[name][2])


# ----------------------------------------------------------------------------------- idx


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """An idx file: magic (0, 0, 0x08 = uint8, ndim), big-endian uint32 dims, then the bytes."""
    data = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)


def _write_mnist_like(root: Path, name: str, prefixes: dict[str, str], gz: bool) -> dict[str, int]:
    for split, prefix in prefixes.items():
        images, labels = images_and_labels(name, split)
        raw = root / name / "raw"
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), gz)
    return _counts(name)


def write_mnist(root: Path, gz: bool = False) -> dict[str, int]:
    return _write_mnist_like(root, "MNIST", {"train": "train", "test": "t10k"}, gz)


def write_fashion_mnist(root: Path, gz: bool = False) -> dict[str, int]:
    return _write_mnist_like(root, "FashionMNIST", {"train": "train", "test": "t10k"}, gz)


def write_kmnist(root: Path, gz: bool = False) -> dict[str, int]:
    return _write_mnist_like(root, "KMNIST", {"train": "train", "test": "t10k"}, gz)


def write_emnist(root: Path, gz: bool = False) -> dict[str, int]:
    prefixes = {"train": "emnist-digits-train", "test": "emnist-digits-test"}
    return _write_mnist_like(root, "EMNIST", prefixes, gz)


# ----------------------------------------------------------------------------------- CIFAR


def py2_pickle(obj, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """``obj`` pickled as the CIFAR files are: protocol 2 written by Python 2, so strings and an
    array's data are Python 2 ``str`` (BINSTRING) and arrays go through ``numpy_module._reconstruct``.

    Python 3's pickler cannot write Python 2 strings (it routes bytes through ``_codecs.encode``),
    so the opcodes are written here. Handles dicts, lists, ints, strings and uint8 arrays.
    """
    out = bytearray(b"\x80\x02")  # PROTO 2

    def string(b: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b

    def save(x) -> None:
        if isinstance(x, dict):
            out.extend(b"}(")  # EMPTY_DICT MARK
            for k, v in x.items():
                save(k)
                save(v)
            out.extend(b"u")  # SETITEMS
        elif isinstance(x, list):
            out.extend(b"](")  # EMPTY_LIST MARK
            for v in x:
                save(v)
            out.extend(b"e")  # APPENDS
        elif isinstance(x, int):
            out.extend(b"J" + struct.pack("<i", x))  # BININT
        elif isinstance(x, str):
            out.extend(string(x.encode("latin1")))
        elif isinstance(x, np.ndarray) and x.dtype == np.uint8:
            # _reconstruct(ndarray, (0,), 'b'), then BUILD with (1, shape, dtype('u1', 0, 1), False, data)
            out.extend(
                f"c{numpy_module}\n_reconstruct\ncnumpy\nndarray\n".encode()
                + b"K\x00\x85"
                + string(b"b")
                + b"\x87R"
            )
            out.extend(b"(K\x01(" + b"".join(b"J" + struct.pack("<i", d) for d in x.shape) + b"t")
            out.extend(b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R")  # dtype('u1', 0, 1)
            out.extend(
                b"(K\x03" + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            )  # its state
            out.extend(
                b"\x89" + string(np.ascontiguousarray(x).tobytes()) + b"tb"
            )  # NEWFALSE data TUPLE BUILD
        else:
            raise TypeError(f"py2_pickle cannot write {type(x).__name__}")

    save(obj)
    return bytes(out + b".")


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """[N, 32, 32, 3] -> [N, 3072] rows: all red, then green, then blue, each row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10(root: Path, numpy_module: str = "numpy.core.multiarray") -> dict[str, int]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = images_and_labels("CIFAR10", "train")
    files = {f"data_batch_{i + 1}": (images[4 * i : 4 * i + 4], labels[4 * i : 4 * i + 4]) for i in range(5)}
    files["test_batch"] = images_and_labels("CIFAR10", "test")
    for file, (x, y) in files.items():
        batch = {
            "batch_label": f"batch {file}",
            "labels": [int(v) for v in y],
            "data": _cifar_rows(x),
            "filenames": [f"fake_{file}_{i}.png" for i in range(len(y))],
        }
        (folder / file).write_bytes(py2_pickle(batch, numpy_module))
    meta = {
        "num_cases_per_batch": 4,
        "label_names": "airplane automobile bird cat deer dog frog horse ship truck".split(),
        "num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(py2_pickle(meta, numpy_module))
    return _counts("CIFAR10")


def write_cifar100(root: Path, numpy_module: str = "numpy._core.multiarray") -> dict[str, int]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x, y = images_and_labels("CIFAR100", split)
        batch = {
            "filenames": [f"fake_{split}_{i}.png" for i in range(len(y))],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": [int(v) for v in y],
            "coarse_labels": [0] * len(y),
            "data": _cifar_rows(x),
        }
        (folder / split).write_bytes(py2_pickle(batch, numpy_module))
    meta = {"fine_label_names": CIFAR100_FINE, "coarse_label_names": ["fruit_and_vegetables"]}
    (folder / "meta").write_bytes(py2_pickle(meta, numpy_module))
    return _counts("CIFAR100")


# ----------------------------------------------------------------------------------- others


def write_svhn(root: Path) -> dict[str, int]:
    """``X`` [32, 32, 3, N] uint8 and ``y`` [N, 1] uint8 with the digit 0 stored as 10."""
    (root / "svhn").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, labels = images_and_labels("SVHN", split)
        y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        scipy.io.savemat(root / "svhn" / f"{split}_32x32.mat", {"X": np.moveaxis(images, 0, -1), "y": y})
    return _counts("SVHN")


def write_stl10(root: Path) -> dict[str, int]:
    """Raw uint8: each image channel-first and column-major ([rgb, col, row]); labels 1-based."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, labels = images_and_labels("STL10", split)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 3, 2, 1).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    return _counts("STL10")


def write_pcam(root: Path) -> dict[str, int]:
    """HDF5 files with dataset ``x`` [N, 96, 96, 3] uint8 and ``y`` [N, 1, 1, 1] uint8."""
    (root / "pcam").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, labels = images_and_labels("PCAM", split)
        stem = root / "pcam" / f"camelyonpatch_level_2_split_{split}"
        with h5py.File(f"{stem}_x.h5", "w") as f:
            f.create_dataset("x", data=images, chunks=(1, 96, 96, 3))
        with h5py.File(f"{stem}_y.h5", "w") as f:
            f.create_dataset("y", data=labels.astype(np.uint8).reshape(-1, 1, 1, 1))
    return _counts("PCAM")


def write_fer2013(root: Path, icml: bool = False) -> dict[str, int]:
    """``fer2013.csv`` (``emotion,pixels,Usage``) or, with ``icml``, ``icml_face_data.csv``
    (``emotion, Usage, pixels``); rows in the real file's order: Training, PublicTest, PrivateTest
    (the first half of the test images are PublicTest)."""
    rows = []
    for split in ("train", "test"):
        images, labels = images_and_labels("FER2013", split)
        n = len(labels)
        usages = (
            ["Training"] * n
            if split == "train"
            else ["PublicTest"] * (n // 2) + ["PrivateTest"] * (n - n // 2)
        )
        rows += [(int(y), " ".join(map(str, x.reshape(-1))), u) for x, y, u in zip(images, labels, usages)]
    (root / "fer2013").mkdir(parents=True, exist_ok=True)
    with open(root / "fer2013" / ("icml_face_data.csv" if icml else "fer2013.csv"), "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if icml:
            writer.writerow(["emotion", " Usage", " pixels"])
            writer.writerows((e, u, p) for e, p, u in rows)
        else:
            writer.writerow(["emotion", "pixels", "Usage"])
            writer.writerows(rows)
    return _counts("FER2013")


FAKES = {
    "MNIST": write_mnist,
    "FashionMNIST": write_fashion_mnist,
    "KMNIST": write_kmnist,
    "EMNIST": write_emnist,
    "CIFAR10": write_cifar10,
    "CIFAR100": write_cifar100,
    "SVHN": write_svhn,
    "STL10": write_stl10,
    "PCAM": write_pcam,
    "FER2013": write_fer2013,
}
