"""Tests of the array-file dataset readers (tallmerge.tasks.arrays) on tiny fakes in the real formats."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

import fakes_arrays as fakes
from tallmerge.errors import TallmergeError
from tallmerge.tasks.arrays import LAYOUTS, READERS

DIGITS = tuple("0123456789")
CLASSNAMES = {
    "MNIST": DIGITS,
    "FashionMNIST": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "KMNIST": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "EMNIST": DIGITS,
    "CIFAR10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "CIFAR100": ("apple", "aquarium fish", "maple tree", "pickup truck", "sweet pepper"),  # from the fake's meta
    "SVHN": DIGITS,
    "STL10": tuple(fakes.STL10_NAMES),  # from the fake's class_names.txt
    "PCAM": ("lymph node", "lymph node containing metastatic tumor tissue"),
    "FER2013": ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"),
}  # fmt: skip
IDX_DATASETS = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST")
SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data root holding every fake, and the counts each writer reports."""
    root = tmp_path_factory.mktemp("data")
    return root, {name: write(root) for name, write in fakes.FAKES.items()}


def rgb(images: np.ndarray) -> np.ndarray:
    """Upright fake images as the RGB arrays a reader's PIL images should hold."""
    return images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)


def pixels(samples) -> np.ndarray:
    return np.stack([np.asarray(samples.image(i)) for i in range(len(samples))])


def test_every_dataset_has_a_reader_a_layout_and_a_fake():
    assert set(READERS) == set(LAYOUTS) == set(fakes.FAKES) == set(CLASSNAMES)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", list(READERS))
def test_reads_the_written_split(data, name, split):
    root, counts = data
    samples = READERS[name](root, split)
    images, labels = fakes.images_and_labels(name, split)

    assert len(samples) == counts[name][split] == len(images)
    assert samples.classnames == CLASSNAMES[name]
    assert samples.labels.dtype == np.int64
    assert samples.labels.min() >= 0 and samples.labels.max() < len(samples.classnames)
    np.testing.assert_array_equal(samples.labels, labels)
    first = samples.image(0)
    assert first.mode == "RGB" and first.size == images.shape[2:0:-1]  # PIL size is (width, height)
    np.testing.assert_array_equal(pixels(samples), rgb(images))  # every image, every channel


@pytest.mark.parametrize("name", list(READERS))
def test_reading_is_deterministic(data, name):
    root, _ = data
    a, b = READERS[name](root, "test"), READERS[name](root, "test")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(pixels(a), pixels(b))


def test_emnist_images_are_served_as_stored_like_torchvision(data):
    """EMNIST's files hold transposed digits; torchvision, the task-vectors code and the public
    checkpoints use them so, and so do we (an upright reader would not match their models)."""
    root, _ = data
    stored = np.frombuffer(
        (root / "EMNIST/raw/emnist-digits-test-images-idx3-ubyte").read_bytes()[16:], np.uint8
    )
    stored = stored.reshape(-1, 28, 28)
    image = np.asarray(READERS["EMNIST"](root, "test").image(3))[..., 0]
    np.testing.assert_array_equal(image, stored[3])
    assert not np.array_equal(image, stored[3].T)


def test_stl10_pixels_are_column_major(data):
    root, _ = data
    raw = (root / "stl10_binary/test_X.bin").read_bytes()
    image = np.asarray(READERS["STL10"](root, "test").image(2))
    for row, col, channel in [(0, 1, 0), (5, 90, 1), (95, 3, 2)]:
        assert image[row, col, channel] == raw[2 * 3 * 96 * 96 + channel * 96 * 96 + col * 96 + row]
    assert not np.array_equal(
        image[..., 0], np.frombuffer(raw, np.uint8)[2 * 27648 :][: 96 * 96].reshape(96, 96)
    )


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "KMNIST", "EMNIST", "PCAM"])
def test_matches_torchvision(data, name):
    """torchvision's own class on the same files (the ones it reads without checking an md5)."""
    from torchvision import datasets

    root, _ = data
    for split in SPLITS:
        if name == "PCAM":
            theirs = datasets.PCAM(root, split=split)
        elif name == "EMNIST":
            theirs = datasets.EMNIST(root, split="digits", train=split == "train")
        else:
            theirs = getattr(datasets, name)(root, train=split == "train")
        ours = READERS[name](root, split)
        assert len(theirs) == len(ours)
        for i in range(len(ours)):
            image, label = theirs[i]
            expected = np.asarray(image.convert("RGB"))
            assert label == ours.labels[i]
            np.testing.assert_array_equal(np.asarray(ours.image(i)), expected)


@pytest.mark.parametrize("name", IDX_DATASETS)
def test_gzipped_idx_files_read_the_same(data, tmp_path, name):
    root, _ = data
    fakes.FAKES[name](tmp_path, gz=True)
    assert not list(tmp_path.rglob("*-ubyte"))
    for split in SPLITS:
        plain, gz = READERS[name](root, split), READERS[name](tmp_path, split)
        np.testing.assert_array_equal(gz.labels, plain.labels)
        np.testing.assert_array_equal(pixels(gz), pixels(plain))


def test_fer2013_reads_torchvisions_icml_csv_alike(data, tmp_path):
    root, _ = data
    fakes.write_fer2013(tmp_path, icml=True)
    assert (tmp_path / "fer2013/icml_face_data.csv").read_text().startswith("emotion, Usage, pixels\n")
    for split in SPLITS:
        plain, icml = READERS["FER2013"](root, split), READERS["FER2013"](tmp_path, split)
        np.testing.assert_array_equal(icml.labels, plain.labels)
        np.testing.assert_array_equal(pixels(icml), pixels(plain))


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_cifar_pickles_load_under_both_numpy_names(tmp_path, numpy_module):
    fakes.write_cifar10(tmp_path, numpy_module=numpy_module)
    assert (
        f"c{numpy_module}\n_reconstruct\n".encode()
        in (tmp_path / "cifar-10-batches-py/test_batch").read_bytes()
    )
    images, labels = fakes.images_and_labels("CIFAR10", "test")
    samples = READERS["CIFAR10"](tmp_path, "test")
    np.testing.assert_array_equal(samples.labels, labels)
    np.testing.assert_array_equal(pixels(samples), images)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_pickle_with_a_payload_is_refused(data, tmp_path, protocol):
    root, _ = data
    shutil.copytree(root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py/data_batch_2"
    batch.write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}, protocol=protocol))

    with pytest.raises(TallmergeError) as e:
        READERS["CIFAR10"](tmp_path, "train")
    message = str(e.value)
    assert "\n" not in message and str(batch) in message
    assert f"{os.system.__module__}.system" in message and "refused" in message
    assert not marker.exists()


def test_cifar100_meta_with_a_payload_is_refused(data, tmp_path):
    root, _ = data
    shutil.copytree(root / "cifar-100-python", tmp_path / "cifar-100-python")
    marker = tmp_path / "pwned"
    (tmp_path / "cifar-100-python/meta").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(TallmergeError, match=r"cifar-100-python/meta .*system"):
        READERS["CIFAR100"](tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("name", list(READERS))
def test_missing_files_name_the_expected_layout(tmp_path, name):
    with pytest.raises(TallmergeError) as e:
        READERS[name](tmp_path, "train")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{name}: {tmp_path}")
    assert "not found" in message and LAYOUTS[name] in message


def test_one_missing_batch_is_named(data, tmp_path):
    root, _ = data
    shutil.copytree(root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py/data_batch_4").unlink()
    with pytest.raises(TallmergeError, match="data_batch_4 not found"):
        READERS["CIFAR10"](tmp_path, "train")
    assert len(READERS["CIFAR10"](tmp_path, "test")) == 10


CORRUPT = [  # (dataset, file, content)
    (
        "MNIST",
        "MNIST/raw/t10k-images-idx3-ubyte",
        b"\x00\x00\x08\x03" + bytes(12) + b"\x01",
    ),  # 0 images, 1 byte
    (
        "KMNIST",
        "KMNIST/raw/t10k-labels-idx1-ubyte",
        b"\x00\x00\x08\x03" + bytes(20),
    ),  # idx3 where idx1 belongs
    (
        "EMNIST",
        "EMNIST/raw/emnist-digits-test-labels-idx1-ubyte",
        b"\x00\x00\x08\x01\x00\x00\x00\x02\x00\x01",
    ),
    ("SVHN", "svhn/test_32x32.mat", b"not a mat file"),
    ("STL10", "stl10_binary/test_X.bin", bytes(100)),
    ("PCAM", "pcam/camelyonpatch_level_2_split_test_x.h5", b"not hdf5"),
    ("FER2013", "fer2013/fer2013.csv", b"emotion,pixels,Usage\n0,1 2 3,PublicTest\n"),
    ("CIFAR10", "cifar-10-batches-py/test_batch", b"\x80\x02}q\x00."),  # an empty dict
]


@pytest.mark.parametrize("name, file, content", CORRUPT, ids=[case[0] for case in CORRUPT])
def test_corrupt_files_give_one_line_naming_the_file(data, tmp_path, name, file, content):
    root, _ = data
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    (tmp_path / file).write_bytes(content)
    with pytest.raises(TallmergeError) as e:
        READERS[name](tmp_path, "test")
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / file) in message and LAYOUTS[name] in message


@pytest.mark.parametrize("name", list(READERS))
def test_unknown_split_is_refused(data, name):
    root, _ = data
    with pytest.raises(TallmergeError, match=r"unknown split 'val'"):
        READERS[name](root, "val")


@pytest.mark.parametrize("name", ["STL10", "PCAM"])
def test_lazy_samples_pickle_cheaply(data, name):
    root, _ = data
    samples = READERS[name](root, "test")
    samples.image(0)  # opens the source in this process
    blob = pickle.dumps(samples)
    assert len(blob) < 5_000
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(pixels(copy), pixels(samples))
