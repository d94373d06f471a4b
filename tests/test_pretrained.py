"""Pre-trained weights from this machine only: checkpoint paths, tags found in the local caches,
and one-line errors saying which file to place where. Nothing here touches the network."""

import pytest
import torch
from safetensors.torch import save_file

from stage_runner import run_stage
from tallmerge.clip import pretrained
from tallmerge.clip.models import create_clip
from tallmerge.errors import TallmergeError


def fake_hub_file(cache, repo, filename, content=b"weights"):
    """A file laid out as huggingface_hub caches it (snapshot + refs/main)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    (snapshot / filename).write_bytes(content)
    return snapshot / filename


def test_checkpoint_path_loads_into_the_architecture(tmp_path):
    source = create_clip("pocket-vit", seed=3)
    path = tmp_path / "pocket.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    model = pretrained.load("pocket-vit", str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training


def test_missing_checkpoint_path(tmp_path):
    with pytest.raises(TallmergeError, match="checkpoint file not found: .*nope.safetensors"):
        pretrained.resolve("ViT-B-32", str(tmp_path / "nope.safetensors"))


def test_wrong_architecture_checkpoint(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3)}, path)
    with pytest.raises(TallmergeError, match="other.safetensors: not a pocket-vit checkpoint"):
        pretrained.load("pocket-vit", str(path))


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(
        TallmergeError, match="no pretrained tag 'imagenet' for ViT-B-32 .*openai, laion400m_e31"
    ):
        pretrained.resolve("ViT-B-32", "imagenet")
    with pytest.raises(TallmergeError, match="it has none"):
        pretrained.resolve("pocket-vit", "openai")


def test_tag_not_cached_says_which_file_to_place_where(tmp_path):
    with pytest.raises(TallmergeError) as error:
        pretrained.resolve("ViT-B-32", "openai", cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert (
        "open_clip_model.safetensors of the Hugging Face repo timm/vit_base_patch32_clip_224.openai"
        in message
    )
    assert (
        str(tmp_path) in message and "ViT-B-32.pt" not in message
    )  # OpenAI's TorchScript file is not offered
    with pytest.raises(TallmergeError, match="vit_b_32-laion2b_e16-af8dbd0c.pth .*releases"):
        pretrained.resolve("ViT-B-32", "laion2b_e16", cache_dir=tmp_path)


def test_tag_found_in_the_hub_cache(tmp_path):
    safe = fake_hub_file(tmp_path, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    assert pretrained.resolve("ViT-B-32", "openai", cache_dir=tmp_path) == safe


def test_tag_found_in_the_url_cache(tmp_path):
    target = tmp_path / "vit_b_32-laion2b_e16-af8dbd0c.pth"
    target.write_bytes(b"weights")
    assert pretrained.resolve("ViT-B-32", "laion2b_e16", cache_dir=tmp_path) == target


def test_paths_and_tags_are_told_apart():
    assert pretrained.is_path("weights/clip.pt") and pretrained.is_path("clip.safetensors")
    assert not pretrained.is_path("laion2b_s34b_b79k") and not pretrained.is_path("openai")


def test_pretrain_stage_takes_local_weights(tmp_path, capsys):
    """model.pretrained set: the stage writes the given weights as theta_0, no training."""
    from pathlib import Path

    import yaml
    from safetensors.torch import load_file

    root = Path(__file__).resolve().parents[1]
    source = create_clip("pocket-vit", seed=4)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "clip.safetensors")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["pretrained"] = str(tmp_path / "clip.safetensors")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_stage("pretrain", cwd=tmp_path) == 0
    visual = load_file(tmp_path / "models" / "pretrained" / "visual.safetensors")
    assert all(torch.equal(visual[k], v) for k, v in source.visual.state_dict().items())

    params["model"]["pretrained"] = "openai"  # pocket-vit has no tags: a one-line error, exit 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_stage("pretrain", cwd=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no pretrained tag 'openai'" in err


def test_pretrain_stage_takes_a_hugging_face_clip_folder(tmp_path):
    """model.pretrained set to a transformers CLIPModel folder: converted to open_clip, written as theta_0."""
    import json
    from pathlib import Path

    import yaml
    from safetensors.torch import load_file

    pytest.importorskip("transformers")
    from helpers import random_hf_clip, save_hf_clip
    from tallmerge.clip.models import CONFIG_DIR

    root = Path(__file__).resolve().parents[1]
    hf = random_hf_clip(json.loads((CONFIG_DIR / "pocket-vit.json").read_text()), hidden_act="gelu", seed=5)
    folder = save_hf_clip(hf, tmp_path / "hf-clip")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["arch"], params["model"]["pretrained"] = "pocket-vit", str(folder)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_stage("pretrain", cwd=tmp_path) == 0
    visual = load_file(tmp_path / "models" / "pretrained" / "visual.safetensors")
    text = load_file(tmp_path / "models" / "pretrained" / "text.safetensors")
    assert torch.equal(visual["proj"], hf.visual_projection.weight.T)
    assert torch.equal(visual["conv1.weight"], hf.vision_model.embeddings.patch_embedding.weight)
    assert torch.equal(text["text_projection"], hf.text_projection.weight.T)
    assert torch.equal(text["token_embedding.weight"], hf.text_model.embeddings.token_embedding.weight)
    assert torch.equal(text["logit_scale"], hf.logit_scale)
