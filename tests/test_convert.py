"""HF CLIP vision checkpoints -> open_clip: same features, clear refusals."""

import json

import open_clip
import pytest
import torch

transformers = pytest.importorskip("transformers")

from tallmerge.convert import check_visual_state, convert_hf_clip, hf_to_open_clip  # noqa: E402
from tallmerge.errors import TallmergeError  # noqa: E402
from tallmerge.models import create_clip  # noqa: E402
from tallmerge.safeload import load_state_dict  # noqa: E402

TINY = "tallmerge-test-hf-tiny"  # the HF model below, as an open_clip config
DEEPER = "tallmerge-test-hf-tiny-3l"  # the same with one more block


def open_clip_config(layers: int) -> dict:
    return {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": layers, "head_width": 16, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, layers in ((TINY, 2), (DEEPER, 3)):
        (folder / f"{name}.json").write_text(json.dumps(open_clip_config(layers)))
    open_clip.add_model_config(folder)


@pytest.fixture(scope="module")
def hf():
    """A random tiny CLIPVisionModelWithProjection, every parameter perturbed (so that no two
    LayerNorms are alike and a swapped key would show)."""
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        projection_dim=32,
        hidden_act="quick_gelu",
    )
    model = transformers.CLIPVisionModelWithProjection(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def reference(hf, images):
    with torch.no_grad():
        return hf(pixel_values=images).image_embeds


def open_clip_features(state: dict, images: torch.Tensor) -> torch.Tensor:
    visual = create_clip(TINY).visual.eval()
    visual.load_state_dict(state, strict=True)
    with torch.no_grad():
        return visual(images)


def full_clip_state(hf) -> dict:
    """A whole CLIPModel's state dict whose image tower is ``hf``'s."""
    config = transformers.CLIPConfig(
        vision_config=hf.config.to_dict(),
        text_config={
            "vocab_size": 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 8,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        projection_dim=32,
    )
    full = transformers.CLIPModel(config)
    full.vision_model.load_state_dict(hf.vision_model.state_dict())
    full.visual_projection.load_state_dict(hf.visual_projection.state_dict())
    return full.state_dict()


def test_layer_norm_eps_agree(hf):
    visual = create_clip(TINY).visual
    assert visual.ln_pre.eps == visual.ln_post.eps == hf.config.layer_norm_eps


@pytest.mark.parametrize("layout", ["with-projection", "unprefixed", "old-transformers", "full-clip"])
def test_converted_encoder_gives_hf_features(hf, images, reference, layout):
    state = hf.state_dict()
    if layout == "unprefixed":  # CLIPVisionModel-style keys, without ``vision_model.``
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    elif layout == "old-transformers":  # transformers < 4.31 also saved this buffer
        state = {**state, "vision_model.embeddings.position_ids": torch.arange(17)[None]}
    elif layout == "full-clip":
        state = full_clip_state(hf)
        assert any(k.startswith("text_model.") for k in state) and "logit_scale" in state
    visual = convert_hf_clip(state, TINY, source="hf.bin")
    assert (open_clip_features(visual, images) - reference).abs().max() < 1e-4


def test_hf_bin_file_through_safeload(hf, images, reference, tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save(hf.state_dict(), path)
    visual = convert_hf_clip(load_state_dict(path), TINY, source=str(path))
    assert (open_clip_features(visual, images) - reference).abs().max() < 1e-4


def test_keys_and_layout(hf):
    visual = hf_to_open_clip(hf.state_dict())
    assert set(visual) == set(create_clip(TINY).visual.state_dict())
    layer = hf.vision_model.encoder.layers[1].self_attn
    q, k, v = visual["transformer.resblocks.1.attn.in_proj_weight"].split(64)
    assert torch.equal(q, layer.q_proj.weight) and torch.equal(k, layer.k_proj.weight) and torch.equal(v, layer.v_proj.weight)
    assert torch.equal(visual["proj"], hf.visual_projection.weight.T)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("pocket-vit", "hf.bin: tensor 'class_embedding' has shape (64,), pocket-vit expects (128,) (wrong architecture?)"),
        (DEEPER, f"hf.bin: missing tensor 'transformer.resblocks.2.ln_1.weight' for {DEEPER} (wrong architecture?)"),
    ],
)
def test_wrong_architecture_names_first_mismatch(hf, arch, message):
    with pytest.raises(TallmergeError) as e:
        convert_hf_clip(hf.state_dict(), arch, source="hf.bin")
    assert str(e.value) == message


def test_check_visual_state_names_unexpected_tensor(hf):
    visual = hf_to_open_clip(hf.state_dict())
    with pytest.raises(TallmergeError, match=r"^x: unexpected tensor 'extra' for .*\(wrong architecture\?\)$"):
        check_visual_state({**visual, "extra": torch.zeros(1)}, TINY, "x")


def test_vision_model_without_projection_lacks_proj(hf):
    state = {k: v for k, v in hf.state_dict().items() if k != "visual_projection.weight"}
    assert "proj" not in hf_to_open_clip(state)
    with pytest.raises(TallmergeError, match=r"^ckpt: missing tensor 'proj' for "):
        convert_hf_clip(state, TINY, "ckpt")


@pytest.mark.parametrize(
    "state, message",
    [
        (
            {"conv1.weight": torch.zeros(4, 3, 3, 3), "bn1.weight": torch.zeros(4)},
            "resnet.pt: unexpected key 'conv1.weight' (not a Hugging Face CLIP vision state dict)",
        ),
        (
            {"class_embedding": torch.zeros(4)},
            "resnet.pt: unexpected key 'class_embedding' (not a Hugging Face CLIP vision state dict)",
        ),
        (
            {"vision_model.embeddings.class_embedding": torch.zeros(4), "head.weight": torch.zeros(2)},
            "resnet.pt: unexpected key 'head.weight' (not a Hugging Face CLIP vision state dict)",
        ),
        ({"step": 3}, "resnet.pt: 'step' is not a tensor (not a Hugging Face CLIP state dict)"),
        (
            {},
            "resnet.pt: missing key 'embeddings.class_embedding' (incomplete Hugging Face CLIP vision state dict)",
        ),
    ],
)
def test_non_clip_state_is_refused(state, message):
    with pytest.raises(TallmergeError) as e:
        hf_to_open_clip(state, "resnet.pt")
    assert str(e.value) == message


def test_inconsistent_attention_shapes_are_named(hf):
    state = {**hf.state_dict(), "vision_model.encoder.layers.0.self_attn.v_proj.bias": torch.zeros(32)}
    with pytest.raises(TallmergeError) as e:
        hf_to_open_clip(state, "hf.bin")
    assert str(e.value) == "hf.bin: 'vision_model.encoder.layers.0.self_attn' q, k, v bias shapes differ"


def test_missing_hf_key_is_named(hf):
    state = dict(hf.state_dict())
    del state["vision_model.encoder.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(TallmergeError) as e:
        hf_to_open_clip(state, "hf.bin")
    assert str(e.value) == (
        "hf.bin: missing key 'vision_model.encoder.layers.1.self_attn.k_proj.bias' "
        "(incomplete Hugging Face CLIP vision state dict)"
    )


def test_import_command_converts_a_hf_checkpoint(hf, images, reference, tmp_path, capsys):
    from safetensors.torch import load_file
    from test_merge_cli import run

    path = tmp_path / "pytorch_model.bin"
    torch.save(hf.state_dict(), path)
    status, _, _ = run(["import", "--arch", TINY, f"cars={path}", "--out", tmp_path / "out"], capsys)
    assert status == 0
    features = open_clip_features(load_file(tmp_path / "out" / "cars.safetensors"), images)
    assert (features - reference).abs().max() < 1e-4
