"""HF CLIP checkpoints -> open_clip: same features, clear refusals.

Image encoders (``convert_hf_clip``) and whole CLIPModels as the pre-trained model
(``pretrained.load`` of a HF folder or weights file)."""

import json

import open_clip
import pytest
import torch

transformers = pytest.importorskip("transformers")

from helpers import random_hf_clip, run, save_hf_clip  # noqa: E402
from tallmerge.clip import pretrained  # noqa: E402
from tallmerge.clip.convert import (  # noqa: E402
    check_visual_state,
    convert_hf_clip,
    hf_clip_to_open_clip,
    hf_to_open_clip,
    import_checkpoint,
)
from tallmerge.clip.models import create_clip  # noqa: E402
from tallmerge.errors import TallmergeError  # noqa: E402
from tallmerge.formats.safeload import load_state_dict  # noqa: E402

TINY = "tallmerge-test-hf-tiny"  # the HF model below, as an open_clip config
DEEPER = "tallmerge-test-hf-tiny-3l"  # the same with one more block
GELU = "tallmerge-test-hf-gelu"  # TINY with gelu, and its -quickgelu twin (= TINY)
CONFIGS = {TINY: (2, True), DEEPER: (3, True), GELU: (2, False), f"{GELU}-quickgelu": (2, True)}


def open_clip_config(layers: int, quick_gelu: bool = True) -> dict:
    return {
        "embed_dim": 32,
        "quick_gelu": quick_gelu,
        "vision_cfg": {
            "image_size": 32,
            "patch_size": 8,
            "width": 64,
            "layers": layers,
            "head_width": 16,
            "mlp_ratio": 2.0,
        },
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, (layers, quick_gelu) in CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(open_clip_config(layers, quick_gelu)))
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
    assert (
        torch.equal(q, layer.q_proj.weight)
        and torch.equal(k, layer.k_proj.weight)
        and torch.equal(v, layer.v_proj.weight)
    )
    assert torch.equal(visual["proj"], hf.visual_projection.weight.T)


@pytest.mark.parametrize(
    "arch, message",
    [
        (
            "pocket-vit",
            "hf.bin: tensor 'class_embedding' has shape (64,), pocket-vit expects (128,) (wrong architecture?)",
        ),
        (
            DEEPER,
            f"hf.bin: missing tensor 'transformer.resblocks.2.ln_1.weight' for {DEEPER} (wrong architecture?)",
        ),
    ],
)
def test_wrong_architecture_names_first_mismatch(hf, arch, message):
    with pytest.raises(TallmergeError) as e:
        convert_hf_clip(hf.state_dict(), arch, source="hf.bin")
    assert str(e.value) == message


def test_check_visual_state_names_unexpected_tensor(hf):
    visual = hf_to_open_clip(hf.state_dict())
    with pytest.raises(
        TallmergeError, match=r"^x: unexpected tensor 'extra' for .*\(wrong architecture\?\)$"
    ):
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

    path = tmp_path / "pytorch_model.bin"
    torch.save(hf.state_dict(), path)
    status, _, _ = run(["import", "--arch", TINY, f"cars={path}", "--out", tmp_path / "out"], capsys)
    assert status == 0
    features = open_clip_features(load_file(tmp_path / "out" / "cars.safetensors"), images)
    assert (features - reference).abs().max() < 1e-4


def test_a_hugging_face_folder_imports_as_its_weights_file(hf, images, reference, tmp_path):
    hf.save_pretrained(tmp_path / "cars")  # config.json + model.safetensors, as the hub ships them
    features = open_clip_features(import_checkpoint(tmp_path / "cars", TINY), images)
    assert (features - reference).abs().max() < 1e-4
    (tmp_path / "empty").mkdir()
    with pytest.raises(TallmergeError, match="empty: holds neither model.safetensors nor pytorch_model.bin"):
        import_checkpoint(tmp_path / "empty", TINY)


# Whole CLIPModels as the pre-trained model.


@pytest.fixture(scope="module", params=["quick_gelu", "gelu"])
def hf_clip(request, tmp_path_factory):
    """``(arch, HF CLIPModel, its save_pretrained folder)``: TINY's shapes, with either activation."""
    act = request.param
    model = random_hf_clip(open_clip_config(2), act)
    return (
        (TINY if act == "quick_gelu" else GELU),
        model,
        save_hf_clip(model, tmp_path_factory.mktemp(f"hf-{act}")),
    )


@pytest.fixture(scope="module")
def tokens():
    """Start token, random words, end token (the largest id), zero padding: three lengths."""
    rows = []
    generator = torch.Generator().manual_seed(2)
    for length in (3, 6, 1):
        words = torch.randint(1, 62, (length,), generator=generator).tolist()
        rows.append(([62] + words + [63] + [0] * 8)[:8])
    return torch.tensor(rows)


def hf_features(output) -> torch.Tensor:
    """``get_*_features``' result: a tensor (transformers 4) or its ``pooler_output`` (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def hf_clip_variant(folder, variant, tmp_path):
    """The ``model.pretrained`` value for the saved ``folder`` in the given form."""
    if variant == "folder":
        return str(folder)
    if variant == "safetensors-file":
        return str(folder / "model.safetensors")
    from safetensors.torch import load_file

    other = tmp_path / "bin-folder"  # pytorch_model.bin, with old transformers' position_ids buffers
    other.mkdir()
    (other / "config.json").write_text((folder / "config.json").read_text())
    state = load_file(folder / "model.safetensors")
    state["text_model.embeddings.position_ids"] = torch.arange(8)[None]
    state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    torch.save(state, other / "pytorch_model.bin")
    return str(other)


@pytest.mark.parametrize("variant", ["folder", "safetensors-file", "bin-folder"])
def test_pretrained_hf_clip_gives_hf_features(hf_clip, images, tokens, variant, tmp_path):
    arch, hf, folder = hf_clip
    model = pretrained.load(arch, hf_clip_variant(folder, variant, tmp_path))
    assert not model.training
    with torch.no_grad():
        image = (
            (model.encode_image(images) - hf_features(hf.get_image_features(pixel_values=images))).abs().max()
        )
        text = (model.encode_text(tokens) - hf_features(hf.get_text_features(input_ids=tokens))).abs().max()
    assert image < 1e-4 and text < 1e-4
    assert torch.equal(model.logit_scale, hf.logit_scale)


def test_whole_clip_keys_and_layout(hf_clip):
    _, hf, _ = hf_clip
    state = {**hf.state_dict(), "text_model.embeddings.position_ids": torch.arange(8)[None]}
    whole = hf_clip_to_open_clip(state)
    assert set(whole) == set(create_clip(TINY).state_dict())
    layer = hf.text_model.encoder.layers[0].self_attn
    q, k, v = whole["transformer.resblocks.0.attn.in_proj_bias"].split(32)
    assert (
        torch.equal(q, layer.q_proj.bias)
        and torch.equal(k, layer.k_proj.bias)
        and torch.equal(v, layer.v_proj.bias)
    )
    assert whole["text_projection"].shape == (32, 32)
    assert torch.equal(whole["text_projection"], hf.text_projection.weight.T)
    assert torch.equal(whole["visual.proj"], hf.visual_projection.weight.T)
    assert torch.equal(whole["token_embedding.weight"], hf.text_model.embeddings.token_embedding.weight)


@pytest.mark.parametrize("hf_clip", ["quick_gelu"], indirect=True)
def test_pretrained_hf_clip_wrong_architecture_names_first_mismatch(hf_clip):
    _, _, folder = hf_clip
    with pytest.raises(TallmergeError) as e:
        pretrained.load(DEEPER, str(folder))
    assert str(e.value) == (
        f"{folder / 'model.safetensors'}: missing tensor 'visual.transformer.resblocks.2.ln_1.weight' "
        f"for {DEEPER} (wrong architecture?)"
    )


@pytest.mark.parametrize(
    "hf_clip, arch, hint",
    [
        ("quick_gelu", GELU, f"{GELU} uses gelu: set model.arch to {GELU}-quickgelu"),
        ("quick_gelu", "ViT-B-32", "ViT-B-32 uses gelu: set model.arch to ViT-B-32-quickgelu"),
        ("gelu", f"{GELU}-quickgelu", f"uses quick_gelu: set model.arch to {GELU}"),
        ("gelu", TINY, "uses quick_gelu: use an arch without quick_gelu"),
    ],
    indirect=["hf_clip"],
)
def test_pretrained_hf_clip_activation_must_match_the_arch(hf_clip, arch, hint):
    act, folder = ("quick_gelu" if hf_clip[0] == TINY else "gelu"), hf_clip[2]
    with pytest.raises(TallmergeError) as e:
        pretrained.load(arch, str(folder))
    message = str(e.value)
    assert "\n" not in message and message.startswith(
        f"{folder / 'model.safetensors'}: a Hugging Face CLIP with {act}"
    )
    assert f"hidden_act in {folder / 'config.json'}" in message and message.endswith(hint)


@pytest.mark.parametrize("hf_clip", ["quick_gelu"], indirect=True)
def test_pretrained_hf_weights_file_without_config_is_taken_as_quick_gelu(hf_clip, tmp_path):
    folder = hf_clip[2]
    path = tmp_path / "model.safetensors"
    path.write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(
        TallmergeError, match=r"quick_gelu activations \(transformers' default, no config.json beside it\)"
    ):
        pretrained.load(GELU, str(path))


def test_pretrained_hf_vision_model_is_refused(hf, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, path)
    with pytest.raises(TallmergeError) as e:
        pretrained.load(TINY, str(path))
    assert (
        str(e.value)
        == f"{path}: no text tower ('text_model.*' keys): a whole Hugging Face CLIPModel is needed"
    )


def test_pretrained_hf_folder_without_weights(tmp_path):
    with pytest.raises(TallmergeError, match="checkpoint file not found: .*nowhere"):
        pretrained.load(TINY, str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TallmergeError) as e:
        pretrained.load(TINY, str(tmp_path))
    assert str(e.value) == (
        f"model.pretrained: {tmp_path}: holds neither model.safetensors nor pytorch_model.bin "
        "(expected a Hugging Face model folder)"
    )


def test_incomplete_text_tower_is_named(hf_clip):
    _, hf, _ = hf_clip
    state = dict(hf.state_dict())
    del state["text_model.final_layer_norm.bias"]
    with pytest.raises(TallmergeError) as e:
        hf_clip_to_open_clip(state, "hf.bin")
    assert (
        str(e.value)
        == "hf.bin: missing key 'text_model.final_layer_norm.bias' (incomplete Hugging Face CLIP text state dict)"
    )
    del state["logit_scale"]
    state["text_model.final_layer_norm.bias"] = hf.text_model.final_layer_norm.bias
    with pytest.raises(
        TallmergeError, match=r"^hf.bin: missing key 'logit_scale' \(incomplete Hugging Face CLIPModel"
    ):
        hf_clip_to_open_clip(state, "hf.bin")
