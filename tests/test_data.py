"""Task data: generated splits and dataset indexes, val held out with the seed, model-ready
batches through the model's own open_clip transform, and refusals that name what is wrong."""

import shutil

import pytest
import torch

from fakes_arrays import FAKES as ARRAY_FAKES
from fakes_folders import FAKES as FOLDER_FAKES
from tallmerge.clip.batches import DatasetSplit, ImageSplit, split_for
from tallmerge.clip.models import create_clip, image_stats, image_transform
from tallmerge.errors import TallmergeError
from tallmerge.tasks import PRESETS, get_task
from tallmerge.tasks.datafile import VAL_MAX, TaskData, prepare

SIZES = {"train": None, "val": None, "test": None}
COUNTS: dict[str, dict[str, int]] = {}  # images per official split of each fake, filled by `root`


@pytest.fixture(scope="module")
def clip():
    return create_clip("pocket-vit", seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Fake MNIST (arrays) and EuroSAT (image files) in their real layouts."""
    root = tmp_path_factory.mktemp("datasets")
    COUNTS.update(MNIST=ARRAY_FAKES["MNIST"](root), EuroSAT=FOLDER_FAKES["EuroSAT"](root))
    return root


def test_presets_are_the_papers_benchmarks_in_order():
    assert PRESETS["paper-8"] == ("Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SVHN", "SUN397")
    assert PRESETS["paper-14"][8:] == ("STL10", "OxfordIIITPet", "Flowers102", "CIFAR100", "PCAM", "FER2013")
    assert PRESETS["paper-20"][14:] == (
        "CIFAR10",
        "Food101",
        "FashionMNIST",
        "RenderedSST2",
        "EMNIST",
        "KMNIST",
    )
    for name in PRESETS["paper-20"]:
        task = get_task(name)
        assert task.templates and all(t.count("{}") == 1 for t in task.templates)
        assert task.layout  # every reader documents its layout


@pytest.mark.parametrize("name", ["MNIST", "EuroSAT"])
def test_index_holds_val_out_of_train_with_the_seed(root, tmp_path, name):
    prepare(get_task(name), SIZES, 0, root, tmp_path / "a.safetensors")
    data = TaskData(tmp_path / "a.safetensors", root)
    official = get_task(name).read(root, "train")
    n_train, n_test = COUNTS[name]["train"], COUNTS[name]["test"]
    index = {s: data.tensors[f"{s}.index"] for s in ("train", "val", "test")}
    assert len(index["val"]) == min(int(0.1 * n_train), VAL_MAX) > 0
    assert sorted(torch.cat([index["train"], index["val"]]).tolist()) == list(
        range(n_train)
    )  # disjoint, complete
    assert index["test"].tolist() == list(range(n_test))
    assert torch.equal(
        data.tensors["train.labels"], torch.from_numpy(official.labels[index["train"].numpy()])
    )
    assert data.classnames == official.classnames and data.templates == get_task(name).templates
    # deterministic in the seed; another seed holds out other images
    prepare(get_task(name), SIZES, 0, root, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    prepare(get_task(name), SIZES, 1, root, tmp_path / "c.safetensors")
    assert not torch.equal(TaskData(tmp_path / "c.safetensors", root).tensors["val.index"], index["val"])


def test_sizes_subsample_and_refuse_more_than_there_is(root, tmp_path):
    prepare(get_task("MNIST"), {"train": 5, "val": 3, "test": 4}, 0, root, tmp_path / "m.safetensors")
    data = TaskData(tmp_path / "m.safetensors", root)
    assert [len(data.tensors[f"{s}.index"]) for s in ("train", "val", "test")] == [5, 3, 4]
    assert not set(data.tensors["train.index"].tolist()) & set(data.tensors["val.index"].tolist())
    with pytest.raises(TallmergeError, match=r"data\.test: 100000 images asked, MNIST has \d+"):
        prepare(
            get_task("MNIST"),
            {"train": None, "val": None, "test": 100000},
            0,
            root,
            tmp_path / "x.safetensors",
        )
    assert not (tmp_path / "x.safetensors").exists()


def test_missing_root_or_dataset_is_a_clear_error(root, tmp_path):
    with pytest.raises(TallmergeError, match=r"data\.root: task 'MNIST' reads a dataset"):
        prepare(get_task("MNIST"), SIZES, 0, None, tmp_path / "m.safetensors")
    with pytest.raises(TallmergeError, match=r"SVHN: .*svhn.* not found; expected "):
        prepare(get_task("SVHN"), SIZES, 0, root, tmp_path / "s.safetensors")
    with pytest.raises(TallmergeError, match=r"data\.train: 'digits' is a generated task"):
        prepare(get_task("digits"), SIZES, 0, None, tmp_path / "d.safetensors")
    assert not list(tmp_path.iterdir())


def test_dataset_batches_are_the_models_own_transform(root, tmp_path, clip):
    prepare(get_task("EuroSAT"), SIZES, 0, root, tmp_path / "e.safetensors")
    data = TaskData(tmp_path / "e.safetensors", root)
    test = split_for(data, "test", clip)
    assert isinstance(test, DatasetSplit)
    (x, y), *_ = test.in_order(batch_size=4)
    official = get_task("EuroSAT").read(root, "test")
    expected = torch.stack([image_transform(clip)(official.image(i)) for i in range(len(x))])
    assert x.shape == (len(x), 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, expected) and torch.equal(y, torch.from_numpy(official.labels[: len(x)]))


def test_training_batches_are_seeded_per_image_whatever_the_workers(root, tmp_path, clip):
    prepare(get_task("MNIST"), SIZES, 0, root, tmp_path / "m.safetensors")
    data = TaskData(tmp_path / "m.safetensors", root)
    positions = [torch.tensor([3, 1, 4]), torch.tensor([1, 5, 2])]
    runs = [
        list(split_for(data, "train", clip, train=True, workers=w).batches(positions, seed=7))
        for w in (0, 0, 2)
    ]
    for run in runs[1:]:
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(runs[0], run))
    other = list(split_for(data, "train", clip, train=True).batches(positions, seed=8))
    assert not torch.equal(other[0][0], runs[0][0][0])  # the augmentation is random, and seeded


def test_generated_split_normalizes_as_before(tmp_path, clip):
    prepare(get_task("colors"), {"train": 6, "val": 3, "test": 3}, 0, None, tmp_path / "c.safetensors")
    split = split_for(TaskData(tmp_path / "c.safetensors"), "train", clip)
    assert isinstance(split, ImageSplit) and len(split) == 6
    images, labels = get_task("colors").generate("train", 6, 0)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in image_stats(clip))
    expected = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    ((x, y),) = split.in_order(batch_size=6)
    assert torch.allclose(x, expected, atol=1e-6) and torch.equal(y, torch.from_numpy(labels))


def test_a_changed_dataset_folder_is_caught(root, tmp_path, clip):
    moved = tmp_path / "root"
    shutil.copytree(root, moved)
    prepare(get_task("EuroSAT"), SIZES, 0, moved, tmp_path / "e.safetensors")
    split_for(TaskData(tmp_path / "e.safetensors", root), "test", clip)  # the same files elsewhere: fine
    first = sorted((moved / "eurosat" / "2750").iterdir())[0]
    sorted(first.iterdir())[0].unlink()  # one image fewer
    with pytest.raises(
        TallmergeError, match=r"EuroSAT .* when prepared; rerun `dvc repro --force prepare@EuroSAT`"
    ):
        split_for(TaskData(tmp_path / "e.safetensors", moved), "train", clip)


def test_malformed_task_data_is_refused(tmp_path, clip):
    from tallmerge.formats.files import save_tensors

    save_tensors({"train.labels": torch.zeros(3, dtype=torch.int64)}, tmp_path / "t.safetensors")
    with pytest.raises(TallmergeError, match="not a task data file"):
        TaskData(tmp_path / "t.safetensors")
    meta = {"task": "colors", "classnames": ["a"], "templates": ["{}"]}
    save_tensors(
        {
            "train.labels": torch.zeros(3, dtype=torch.int64),
            "train.images": torch.zeros(2, 32, 32, 3, dtype=torch.uint8),
        },
        tmp_path / "t.safetensors",
        meta,
    )
    with pytest.raises(TallmergeError, match="split 'train' has 2 images and 3 labels"):
        split_for(TaskData(tmp_path / "t.safetensors"), "train", clip)
    with pytest.raises(TallmergeError, match="no tensor 'val.labels'"):
        split_for(TaskData(tmp_path / "t.safetensors"), "val", clip)


def test_process_shares_get_the_one_process_augmentation(root, tmp_path, clip):
    """Under DDP each rank reads its share of a batch, augmented as in a one-process run."""
    prepare(get_task("EuroSAT"), SIZES, 0, root, tmp_path / "e.safetensors")
    split = split_for(TaskData(tmp_path / "e.safetensors", root), "train", clip, train=True)
    positions = [torch.tensor([3, 1, 4, 0]), torch.tensor([1, 5, 2, 6])]
    whole = list(split.batches(positions, seed=7))
    shares = [list(split.batches(positions, seed=7, share=(rank, 2))) for rank in range(2)]
    for step, (x, y) in enumerate(whole):
        for rank in range(2):
            assert torch.equal(shares[rank][step][0], x[rank::2]) and torch.equal(
                shares[rank][step][1], y[rank::2]
            )


def test_generated_tasks_refuse_a_model_of_another_resolution(tmp_path):
    prepare(get_task("colors"), {"train": 2, "val": 2, "test": 2}, 0, None, tmp_path / "c.safetensors")
    with pytest.raises(TallmergeError, match=r"generated 32 x 32 px images, the model takes 224 x 224"):
        split_for(TaskData(tmp_path / "c.safetensors"), "train", create_clip("ViT-B-32"))


def test_reading_a_dataset_leaves_the_global_random_stream_alone(root, tmp_path, clip):
    prepare(get_task("MNIST"), SIZES, 0, root, tmp_path / "m.safetensors")
    split = split_for(TaskData(tmp_path / "m.safetensors", root), "test", clip, workers=2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    list(split.in_order(batch_size=4))
    assert torch.equal(torch.rand(3), expected)
