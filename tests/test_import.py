"""`tallmerge import`: image encoders from open_clip layouts, checked against the architecture.
(Hugging Face checkpoints: tests/test_convert.py; pickled modules: tests/test_safeload.py.)"""

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import fails, run
from tallmerge.clip.convert import import_checkpoint
from tallmerge.clip.models import create_clip
from tallmerge.errors import TallmergeError


@pytest.fixture(scope="module")
def clip():
    return create_clip("pocket-vit", seed=5)


def assert_is_visual(state, clip):
    expected = clip.visual.state_dict()
    assert list(state) == list(expected) or set(state) == set(expected)
    assert all(torch.equal(state[k], v) for k, v in expected.items())


@pytest.mark.parametrize("prefix", ["", "visual.", "model.visual.", "module.visual."])
def test_open_clip_layouts(clip, tmp_path, prefix):
    full = {k: v for k, v in clip.state_dict().items() if k.startswith("visual.") or prefix != ""}
    state = {prefix + k.removeprefix("visual."): v for k, v in full.items() if k.startswith("visual.")}
    if prefix:  # the text tower comes along in whole-model checkpoints and is dropped
        state.update(
            {prefix.replace("visual.", "") + k: v for k, v in full.items() if not k.startswith("visual.")}
        )
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    assert_is_visual(import_checkpoint(path, "pocket-vit"), clip)


def test_command_writes_one_safetensors_per_checkpoint(clip, tmp_path, capsys):
    save_file(
        {f"visual.{k}": v.contiguous() for k, v in clip.visual.state_dict().items()},
        tmp_path / "a.safetensors",
    )
    torch.save({"state_dict": clip.state_dict()}, tmp_path / "b.pt")
    status, stdout, _ = run(
        [
            "import",
            "--arch",
            "pocket-vit",
            "cars=" + str(tmp_path / "a.safetensors"),
            tmp_path / "b.pt",
            "--out",
            tmp_path / "out",
        ],
        capsys,
    )
    assert status == 0 and "cars.safetensors" in stdout
    for name in ("cars", "b"):
        assert_is_visual(load_file(tmp_path / "out" / f"{name}.safetensors"), clip)


def test_bad_checkpoints_are_refused_and_nothing_is_written(clip, tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save(clip.state_dict(), good)
    other = tmp_path / "other.pt"
    torch.save(
        {**clip.visual.state_dict(), "conv1.weight": torch.zeros(1, 3, 2, 2)}, other
    )  # another patch size
    fails(
        ["import", "--arch", "pocket-vit", good, other, "--out", tmp_path / "out"],
        capsys,
        str(other),
        "tensor 'conv1.weight' has shape (1, 3, 2, 2), pocket-vit expects",
    )
    assert not list((tmp_path / "out").glob("*"))  # outputs land only when every checkpoint converted
    resnet = tmp_path / "resnet.pt"
    torch.save({"layer1.0.conv1.weight": torch.zeros(2)}, resnet)
    fails(
        ["import", "--arch", "pocket-vit", resnet, "--out", tmp_path / "out"],
        capsys,
        str(resnet),
        "neither an open_clip image encoder nor a Hugging Face CLIP vision checkpoint",
    )
    (tmp_path / "notes.txt").write_text("hello")
    fails(
        ["import", "--arch", "pocket-vit", tmp_path / "notes.txt", "--out", tmp_path / "out"],
        capsys,
        "notes.txt",
        "unknown checkpoint type",
    )
    with pytest.raises(TallmergeError, match="file not found"):
        import_checkpoint(tmp_path / "missing.pt", "pocket-vit")


def test_finetune_stage_imports_instead_of_training(clip, tmp_path):
    """tasks.<task>.import: the stage writes the imported encoder (and the task's head), no training."""
    from pathlib import Path

    import yaml

    from stage_runner import run_stage
    from tallmerge.clip.models import save_clip
    from tallmerge.formats.tensorfile import TensorFile

    root = Path(__file__).resolve().parents[1]
    save_clip(
        create_clip("pocket-vit", seed=0),
        "pocket-vit",
        tmp_path / "models/pretrained/visual.safetensors",
        tmp_path / "models/pretrained/text.safetensors",
    )
    torch.save({"model.visual." + k: v for k, v in clip.visual.state_dict().items()}, tmp_path / "digits.pt")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tasks"] = {"digits": {"import": str(tmp_path / "digits.pt")}}
    params["data"].update(train=20, val=10, test=10)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("prepare", "finetune"):  # the head's class names and prompts come from the task data
        assert run_stage(stage, "digits", cwd=tmp_path) == 0
    assert_is_visual(load_file(tmp_path / "models/finetuned/digits.safetensors"), clip)
    with TensorFile(tmp_path / "models/finetuned/digits.safetensors") as f:
        assert f.metadata["imported"] == str(tmp_path / "digits.pt") and f.metadata["task"] == "digits"
    assert (tmp_path / "models/heads/digits.safetensors").is_file()
