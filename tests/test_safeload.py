"""Untrusted checkpoints load as tensors, and nothing in them runs."""

import argparse
import importlib
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.safeload import load_state_dict

MODELING = "safeload_test_modeling"  # a project's module, importable only while saving

MODELING_SOURCE = textwrap.dedent(
    """
    import enum

    import open_clip
    import torch

    import tallmerge.clip.models  # registers pocket-vit


    class Mode(enum.Enum):
        FAST = "fast"


    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)
            self.norm = torch.nn.LayerNorm(3)
            self.register_buffer("steps", torch.arange(3))
            self.register_buffer("cache", torch.ones(2), persistent=False)
            self.register_parameter("unused", None)
            self.mode = Mode.FAST  # pickled as a call: Mode("fast")


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block(), Block()])
            self.scale = torch.nn.Parameter(torch.full((), 2.0))
            self.head = None


    class ImageEncoder(torch.nn.Module):
        # As the task-vectors / TALL-masks code saves it: a whole open_clip model and its
        # torchvision preprocessing, the text tower deleted.
        def __init__(self):
            super().__init__()
            self.model, self.train_preprocess, self.val_preprocess = open_clip.create_model_and_transforms(
                "pocket-vit", pretrained=None
            )
            delattr(self.model, "transformer")


    class Sparse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.eye(2).to_sparse())


    def touch(path):
        open(path, "w").close()


    class Sneaky:
        # A payload calling a function of the project's own: loading must never call it.
        def __init__(self, path):
            self.path = path

        def __reduce__(self):
            return touch, (self.path,)
    """
)


@pytest.fixture
def modeling(tmp_path, monkeypatch):
    """Import the module above from a temporary folder; after the test, it is gone."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{MODELING}.py").write_text(MODELING_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module(MODELING)
    yield module
    sys.modules.pop(MODELING, None)


def save_then_forget(obj, path, modeling):
    """torch.save ``obj``, then make its classes unimportable."""
    torch.save(obj, path)
    os.remove(modeling.__file__)
    del sys.modules[MODELING]


def assert_same(loaded: dict, expected: dict) -> None:
    assert list(loaded) == list(expected)
    for key, tensor in expected.items():
        assert type(loaded[key]) is torch.Tensor
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key


def state() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(3, 4, generator=generator),
        "a.bias": torch.randn(3, generator=generator),
        "step": torch.tensor(7),
        "h": torch.ones(2, dtype=torch.bfloat16),
    }


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3, "optimizer": {"lr": 0.1}},
        lambda s: {"model": s},
        lambda s: {"args": argparse.Namespace(lr=0.1), "state_dict": s},  # needs the restricted path
    ],
    ids=["plain", "state_dict", "model", "with-args"],
)
def test_state_dict_files_load(tmp_path, wrap):
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(state()), path)
    assert_same(load_state_dict(path), state())


def test_pickled_module_gives_its_state_dict(tmp_path, modeling):
    net = modeling.Net()
    expected = net.state_dict()
    assert "blocks.0.cache" not in expected and "blocks.0.steps" in expected
    path = tmp_path / "net.pt"
    save_then_forget(net, path, modeling)
    assert_same(load_state_dict(path), expected)
    assert MODELING not in sys.modules  # never imported


def test_pickled_task_vectors_image_encoder(tmp_path, modeling):
    encoder = modeling.ImageEncoder()
    expected = encoder.state_dict()
    assert any(k.startswith("model.visual.") for k in expected)
    path = tmp_path / "finetuned.pt"
    save_then_forget(encoder, path, modeling)
    assert_same(load_state_dict(path), expected)
    assert MODELING not in sys.modules


def test_non_allowlisted_project_callable_is_never_called(tmp_path, modeling):
    marker = tmp_path / "called"
    path = tmp_path / "ckpt.pt"
    save_then_forget({"state_dict": state(), "extra": modeling.Sneaky(str(marker))}, path, modeling)
    assert_same(load_state_dict(path), state())
    assert not marker.exists() and MODELING not in sys.modules


def test_tensor_that_is_not_rebuilt_is_named(tmp_path, modeling):
    path = tmp_path / "sparse.pt"
    save_then_forget(modeling.Sparse(), path, modeling)
    with pytest.raises(TallmergeError) as e:
        load_state_dict(path)
    assert str(e.value) == (
        f"{path}: tensor 'index' is a pickled torch._utils._rebuild_sparse_tensor, which cannot be rebuilt safely"
    )


def test_module_containing_itself_is_refused(tmp_path, modeling):
    net = modeling.Net()
    net.blocks.append(net)
    path = tmp_path / "cycle.pt"
    save_then_forget(net, path, modeling)
    with pytest.raises(
        TallmergeError, match=r"cycle\.pt: nested too deeply, or a module that contains itself$"
    ):
        load_state_dict(path)


class Payload:
    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda marker: Payload(os.system, f"touch {marker}"), r"(posix|nt|os)\.system"),
        (lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"), r"builtins\.eval"),
        (lambda marker: Payload(subprocess.Popen, ["touch", str(marker)]), r"subprocess\.Popen"),
    ],
    ids=["os.system", "eval", "Popen"],
)
def test_code_execution_payload_is_refused(tmp_path, make, refused):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": state(), "extra": make(marker)}, path)
    with pytest.raises(TallmergeError) as e:
        load_state_dict(path)
    assert str(e.value).startswith(f"{path}: refused to unpickle ")
    assert "\n" not in str(e.value)
    assert re.search(refused, str(e.value))
    assert not marker.exists()


def not_a_checkpoint(path):
    path.write_text("epoch,accuracy\n1,0.5\n")


def empty(path):
    path.write_bytes(b"")


def zip_of_text(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")


def truncated(path):
    torch.save(state(), path)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "write, message",
    [
        (
            not_a_checkpoint,
            "not a readable torch checkpoint (neither weights-only loadable nor a torch zip archive)",
        ),
        (empty, "not a readable torch checkpoint (neither weights-only loadable nor a torch zip archive)"),
        (zip_of_text, "a zip archive, but not a torch checkpoint (no <name>/data.pkl)"),
        (
            truncated,
            "not a readable torch checkpoint (neither weights-only loadable nor a torch zip archive)",
        ),
    ],
    ids=["csv", "empty", "zip", "truncated"],
)
def test_non_checkpoint_file_is_named(tmp_path, write, message):
    path = tmp_path / "weights.pt"
    write(path)
    with pytest.raises(TallmergeError) as e:
        load_state_dict(path)
    assert str(e.value) == f"{path}: {message}"


def test_missing_file(tmp_path):
    with pytest.raises(TallmergeError, match=r"missing\.pt: file not found$"):
        load_state_dict(tmp_path / "missing.pt")


def edited_checkpoint(tmp_path, record: str, edit) -> str:
    """A checkpoint that needs the restricted path, with one zip record passed through ``edit``."""
    source, path = tmp_path / "ok.pt", tmp_path / "edited.pt"
    torch.save({"args": argparse.Namespace(), "state_dict": state()}, source)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            new.writestr(item, edit(data) if item.filename.endswith(record) else data)
    return path


def test_corrupted_storage_record_is_named(tmp_path):
    path = edited_checkpoint(tmp_path, "/data/0", lambda data: data[:-4])
    with pytest.raises(TallmergeError) as e:
        load_state_dict(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: corrupted checkpoint \(storage 0 has \d+ bytes, expected \d+\)",
        str(e.value),
    )


def test_other_byte_order_is_refused(tmp_path):
    other = {"little": b"big", "big": b"little"}[sys.byteorder]
    path = edited_checkpoint(tmp_path, "/byteorder", lambda data: other)
    with pytest.raises(TallmergeError) as e:
        load_state_dict(path)
    assert str(e.value) == f"{path}: written on a machine of another byte order, not supported"


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")  # TorchScript is deprecated
def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), path)
    with pytest.raises(TallmergeError, match=r"scripted\.pt: a TorchScript archive, not supported"):
        load_state_dict(path)
