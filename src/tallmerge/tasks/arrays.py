"""Readers for the paper's datasets that ship as array files (idx, pickle, .mat, raw binary, HDF5, CSV).

Each ``read_<name>(root, split)`` reads one official split (``train`` or ``test``) of one dataset
from the folder torchvision uses under the data root ``root`` (SVHN's torchvision class takes the
folder itself; we use ``svhn/`` as the task-vectors code does). :data:`LAYOUTS` spells out each
dataset's files; every error quotes it.

============  ========================  ==========================  ================================  ==============================
dataset       folder                    train                       test                              class names
============  ========================  ==========================  ================================  ==============================
MNIST         ``MNIST/raw/``            ``train-*-ubyte[.gz]``      ``t10k-*-ubyte[.gz]``             ``"0"`` .. ``"9"``
FashionMNIST  ``FashionMNIST/raw/``     ``train-*-ubyte[.gz]``      ``t10k-*-ubyte[.gz]``             torchvision's (T-shirt/top ..)
KMNIST        ``KMNIST/raw/``           ``train-*-ubyte[.gz]``      ``t10k-*-ubyte[.gz]``             torchvision's (o, ki, su ..)
EMNIST        ``EMNIST/raw/``           ``emnist-digits-train-*``   ``emnist-digits-test-*``          ``"0"`` .. ``"9"``
CIFAR10       ``cifar-10-batches-py/``  ``data_batch_1`` .. ``5``   ``test_batch``                    fixed (as ``batches.meta``)
CIFAR100      ``cifar-100-python/``     ``train``                   ``test``                          ``meta``: ``fine_label_names``
SVHN          ``svhn/``                 ``train_32x32.mat``         ``test_32x32.mat``                ``"0"`` .. ``"9"``
STL10         ``stl10_binary/``         ``train_{X,y}.bin``         ``test_{X,y}.bin``                ``class_names.txt``
PCAM          ``pcam/``                 ``*_split_train_{x,y}.h5``  ``*_split_test_{x,y}.h5``         fixed (2)
FER2013       ``fer2013/``              Usage ``Training``          ``PublicTest`` + ``PrivateTest``  fixed, by emotion code
============  ========================  ==========================  ================================  ==============================

Details: ``*-ubyte`` stands for ``-images-idx3-ubyte`` and ``-labels-idx1-ubyte`` (a ``.gz``
copy is read when the plain file is absent). CIFAR100 uses ``fine_labels`` and ``meta``'s
``fine_label_names`` with ``_`` read as a space. SVHN's label 10 is the digit 0; STL10's labels
are stored 1-based. PCAM's files are the decompressed HDF5 files (datasets ``x`` [N,96,96,3] and
``y`` [N,1,1,1]); its classes are "lymph node" and "lymph node containing metastatic tumor
tissue". FER2013 reads ``fer2013.csv`` (``emotion,pixels,Usage``), else torchvision's
``icml_face_data.csv`` (``emotion, Usage, pixels``), keeping file order; its classes are
angry, disgusted, fearful, happy, sad, surprised, neutral (emotion codes 0..6).

Orientation: images come out as torchvision serves them, upright except EMNIST: its idx files
store each image transposed and torchvision (hence the task-vectors and TALL-mask code, and the
paper's numbers and public checkpoints) uses them as stored, so we do too. STL10 stores
each image channel-first and column-major, CIFAR channel-first, SVHN as ``X[row, col, rgb, n]``.

Memory: the MNIST family, CIFAR, SVHN and FER2013 are loaded into memory (at most a few hundred
MB); STL10 is memory-mapped and PCAM read from HDF5 on demand, each opened once per process, so
their :class:`Samples` pickle cheaply. CIFAR pickles are loaded by a restricted unpickler that
rebuilds numpy arrays and refuses any other callable a file names.
"""

from __future__ import annotations

import csv
import gzip
import pickle
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from tallmerge.errors import TallmergeError
from tallmerge.tasks.samples import ArraySamples, LazySamples, Samples, check_split, require

DIGITS = tuple("0123456789")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PCAM_CLASSES = ("lymph node", "lymph node containing metastatic tumor tissue")
FER2013_CLASSES = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
)  # emotion codes 0..6

_IDX = "{train,%s}-{images-idx3,labels-idx1}-ubyte[.gz]"
LAYOUTS = {
    "MNIST": "MNIST/raw/" + _IDX % "t10k",
    "FashionMNIST": "FashionMNIST/raw/" + _IDX % "t10k",
    "KMNIST": "KMNIST/raw/" + _IDX % "t10k",
    "EMNIST": "EMNIST/raw/emnist-digits-" + _IDX % "test",
    "CIFAR10": "cifar-10-batches-py/{data_batch_1..5,test_batch} (python pickles from cifar-10-python.tar.gz)",
    "CIFAR100": "cifar-100-python/{train,test,meta} (python pickles from cifar-100-python.tar.gz)",
    "SVHN": "svhn/{train,test}_32x32.mat (MATLAB files with X [32,32,3,N] and y [N,1])",
    "STL10": "stl10_binary/{train,test}_{X,y}.bin and stl10_binary/class_names.txt (from stl10_binary.tar.gz)",
    "PCAM": "pcam/camelyonpatch_level_2_split_{train,test}_{x,y}.h5 (decompressed; datasets 'x' and 'y')",
    "FER2013": "fer2013/fer2013.csv (columns emotion,pixels,Usage) or fer2013/icml_face_data.csv",
}
"""Each dataset's expected files, relative to the data root (quoted by every error)."""


# ----------------------------------------------------------------------------------- helpers


@contextmanager
def _reading(dataset: str, path: Path, *errors: type[Exception]) -> Iterator[None]:
    """Turn a failure to parse ``path`` (or one of ``errors``, a parser's own exception types) into
    one line naming the file and the expected layout."""
    try:
        yield
    except (
        TallmergeError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        EOFError,
        pickle.UnpicklingError,
        *errors,
    ) as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise TallmergeError(
            f"{dataset}: cannot read {path} ({reason}); expected {LAYOUTS[dataset]}"
        ) from None


def _require(dataset: str, path: Path) -> Path:
    return require(path, dataset, LAYOUTS[dataset])


def _idx_file(dataset: str, path: Path) -> Path:
    """``path``, or ``path.gz`` when only the compressed file is there."""
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else _require(dataset, path)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 array from an idx file (big-endian header: 0, 0, type 0x08, ndim, then the dims)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(f"not a uint8 idx file with {ndim} dimension(s)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise ValueError(f"{len(data) - header} data bytes for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_pair(dataset: str, stem: Path, classnames: Sequence[str]) -> Samples:
    images_path = _idx_file(dataset, stem.with_name(stem.name + "-images-idx3-ubyte"))
    labels_path = _idx_file(dataset, stem.with_name(stem.name + "-labels-idx1-ubyte"))
    with _reading(dataset, images_path):
        images = _read_idx(images_path, 3)
    with _reading(dataset, labels_path):
        return ArraySamples(images, _read_idx(labels_path, 1), classnames)


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array-unpickling function, wherever this numpy keeps it
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as the CIFAR files (numpy 1.x) name it
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as numpy 2 names it
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Loads pickles of plain containers and numpy arrays; refuses any other callable a file names."""

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: CIFAR pickles hold only numpy arrays, lists and strings"
            ) from None


def _load_pickle(path: Path) -> dict:
    """A CIFAR pickle (Python 2 strings decoded as latin-1, as torchvision does)."""
    with path.open("rb") as f:
        content = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(content, dict):
        raise ValueError(f"holds a {type(content).__name__}, not a dict")
    return content


def _read_cifar(
    dataset: str, folder: Path, files: Sequence[str], label_key: str, classnames: Sequence[str]
) -> Samples:
    images, labels = [], []
    for path in [_require(dataset, folder / name) for name in files]:
        with _reading(dataset, path):
            batch = _load_pickle(path)
            rows = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # channel-first rows
            if len(rows) != len(batch[label_key]):
                raise ValueError(f"{len(rows)} images but {len(batch[label_key])} {label_key}")
            images.append(rows)
            labels.extend(batch[label_key])
    with _reading(dataset, folder):
        return ArraySamples(np.concatenate(images).transpose(0, 2, 3, 1), labels, classnames)


def _open_memmap_chw(path: Path, size: int) -> Callable[[int], np.ndarray]:
    """STL10 images from ``path``: each stored channel-first and column-major ([rgb, col, row])."""
    images = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, size, size)
    return lambda i: images[i].transpose(2, 1, 0)


def _open_h5(path: Path, key: str) -> Callable[[int], np.ndarray]:
    import h5py

    images = h5py.File(path, "r")[key]
    return lambda i: images[i]


# ----------------------------------------------------------------------------------- readers


def _read_mnist_like(dataset: str, root: Path, split: str, classnames: Sequence[str]) -> Samples:
    check_split(dataset, split)
    return _read_idx_pair(
        dataset, root / dataset / "raw" / ("train" if split == "train" else "t10k"), classnames
    )


def read_mnist(root: Path, split: str) -> Samples:
    return _read_mnist_like("MNIST", root, split, DIGITS)


def read_fashion_mnist(root: Path, split: str) -> Samples:
    return _read_mnist_like("FashionMNIST", root, split, FASHION_MNIST_CLASSES)


def read_kmnist(root: Path, split: str) -> Samples:
    return _read_mnist_like("KMNIST", root, split, KMNIST_CLASSES)


def read_emnist(root: Path, split: str) -> Samples:
    """EMNIST's ``digits`` split, images as stored (transposed), as torchvision and the paper use them."""
    check_split("EMNIST", split)
    return _read_idx_pair("EMNIST", root / "EMNIST" / "raw" / f"emnist-digits-{split}", DIGITS)


def read_cifar10(root: Path, split: str) -> Samples:
    check_split("CIFAR10", split)
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return _read_cifar("CIFAR10", root / "cifar-10-batches-py", files, "labels", CIFAR10_CLASSES)


def read_cifar100(root: Path, split: str) -> Samples:
    check_split("CIFAR100", split)
    folder = root / "cifar-100-python"
    meta = _require("CIFAR100", folder / "meta")
    with _reading("CIFAR100", meta):
        classnames = [str(name).replace("_", " ") for name in _load_pickle(meta)["fine_label_names"]]
    return _read_cifar("CIFAR100", folder, [split], "fine_labels", classnames)


def read_svhn(root: Path, split: str) -> Samples:
    import scipy.io

    check_split("SVHN", split)
    path = _require("SVHN", root / "svhn" / f"{split}_32x32.mat")
    with _reading("SVHN", path, scipy.io.matlab.MatReadError):
        mat = scipy.io.loadmat(path)
        images, labels = mat["X"], mat["y"].astype(np.int64).reshape(-1)
        if images.dtype != np.uint8 or images.shape[:3] != (32, 32, 3):
            raise ValueError(f"X is {images.dtype} {list(images.shape)}, not uint8 [32, 32, 3, N]")
        labels[labels == 10] = 0
        return ArraySamples(np.moveaxis(images, -1, 0), labels, DIGITS)


def read_stl10(root: Path, split: str) -> Samples:
    check_split("STL10", split)
    folder = root / "stl10_binary"
    images, labels, names = (
        _require("STL10", folder / f) for f in (f"{split}_X.bin", f"{split}_y.bin", "class_names.txt")
    )
    with _reading("STL10", names):
        classnames = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    with _reading("STL10", labels):  # stored 1-based
        samples = LazySamples(
            partial(_open_memmap_chw, images, 96), np.fromfile(labels, np.uint8) - 1, classnames
        )
    with _reading("STL10", images):
        if images.stat().st_size != len(samples) * 3 * 96 * 96:
            raise ValueError(
                f"{images.stat().st_size} bytes, not {len(samples)} images of 3x96x96 (one per label)"
            )
    return samples


def read_pcam(root: Path, split: str) -> Samples:
    import h5py

    check_split("PCAM", split)
    images, labels = (
        _require("PCAM", root / "pcam" / f"camelyonpatch_level_2_split_{split}_{k}.h5") for k in "xy"
    )
    with _reading("PCAM", labels), h5py.File(labels, "r") as f:  # y is stored [N, 1, 1, 1]
        samples = LazySamples(partial(_open_h5, images, "x"), np.asarray(f["y"]).reshape(-1), PCAM_CLASSES)
    with _reading("PCAM", images), h5py.File(images, "r") as f:
        if f["x"].dtype != np.uint8 or f["x"].shape != (len(samples), 96, 96, 3):
            raise ValueError(
                f"x is {f['x'].dtype} {list(f['x'].shape)}, not uint8 [{len(samples)}, 96, 96, 3]"
            )
    return samples


def read_fer2013(root: Path, split: str) -> Samples:
    """torchvision's precedence: ``fer2013.csv``, else ``icml_face_data.csv`` (same rows, columns
    ``emotion, Usage, pixels`` with leading spaces in the header)."""
    check_split("FER2013", split)
    folder = root / "fer2013"
    path = folder / "fer2013.csv"
    if not path.exists() and (folder / "icml_face_data.csv").exists():
        path = folder / "icml_face_data.csv"
    usages = ("Training",) if split == "train" else ("PublicTest", "PrivateTest")
    with _reading("FER2013", _require("FER2013", path)), path.open(newline="") as f:
        reader = csv.reader(f)
        column = {name.strip(): i for i, name in enumerate(next(reader, []))}
        emotion, pixels, usage = column["emotion"], column["pixels"], column["Usage"]
        images, labels = [], []
        for row in reader:
            if row[usage].strip() in usages:
                image = np.fromstring(row[pixels], dtype=np.uint8, sep=" ")
                if image.size != 48 * 48:
                    raise ValueError(f"line {reader.line_num}: {image.size} pixels, not 48x48")
                images.append(image.reshape(48, 48))
                labels.append(int(row[emotion]))
        return ArraySamples(
            np.stack(images) if images else np.zeros((0, 48, 48), np.uint8), labels, FER2013_CLASSES
        )


READERS: dict[str, Callable[[Path, str], Samples]] = {
    "MNIST": read_mnist,
    "FashionMNIST": read_fashion_mnist,
    "KMNIST": read_kmnist,
    "EMNIST": read_emnist,
    "CIFAR10": read_cifar10,
    "CIFAR100": read_cifar100,
    "SVHN": read_svhn,
    "STL10": read_stl10,
    "PCAM": read_pcam,
    "FER2013": read_fer2013,
}
