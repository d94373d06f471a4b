import pytest
import torch

from tallmerge.clip.heads import Classifier, load_head, save_head, zeroshot_head
from tallmerge.clip.models import available_models, create_clip, load_clip, load_visual, save_clip, tokenizer
from tallmerge.errors import TallmergeError
from tallmerge.formats.files import load_tensors, save_tensors


@pytest.fixture(scope="module")
def clip():
    return create_clip("pocket-vit", seed=0)


def test_registry_has_pocket_and_real_architectures():
    models = available_models()
    assert "pocket-vit" in models
    assert {"ViT-B-32", "ViT-L-14"} <= set(models)  # real configs stay reachable by name


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(TallmergeError, match="unknown model arch 'ViT-Q-99'"):
        create_clip("ViT-Q-99")


def test_creation_is_deterministic_in_the_seed():
    a, b, c = create_clip("pocket-vit", 3), create_clip("pocket-vit", 3), create_clip("pocket-vit", 4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_save_and_load_clip_roundtrip(clip, tmp_path):
    save_clip(clip, "pocket-vit", tmp_path / "visual.safetensors", tmp_path / "text.safetensors")
    visual, meta = load_tensors(tmp_path / "visual.safetensors")
    assert meta["part"] == "visual" and meta["arch"] == "pocket-vit"
    assert set(visual) == set(clip.visual.state_dict())  # the image encoder alone, unprefixed
    text, _ = load_tensors(tmp_path / "text.safetensors")
    assert not any(k.startswith("visual.") for k in text)
    loaded = load_clip("pocket-vit", tmp_path / "visual.safetensors", tmp_path / "text.safetensors")
    for key, value in clip.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_wrong_architecture_names_the_first_mismatched_key(clip, tmp_path):
    state = clip.visual.state_dict()
    bad = dict(state)
    bad["conv1.weight"] = torch.zeros(1, 2, 3, 4)
    save_tensors(bad, tmp_path / "bad.safetensors")
    with pytest.raises(TallmergeError, match=r"bad\.safetensors: tensor 'conv1\.weight' has shape"):
        load_visual(create_clip("pocket-vit"), tmp_path / "bad.safetensors")
    missing = {k: v for k, v in state.items() if k != "proj"}
    save_tensors(missing, tmp_path / "missing.safetensors")
    with pytest.raises(TallmergeError, match="missing tensor 'proj'"):
        load_visual(create_clip("pocket-vit"), tmp_path / "missing.safetensors")


def test_zeroshot_head_is_normalised_and_scaled(clip, tmp_path):
    classnames, templates = ["red", "green", "blue"], ["a {} thing.", "something {}."]
    head = zeroshot_head(clip, tokenizer("pocket-vit"), classnames, templates)
    assert head.shape == (3, clip.text_projection.shape[1])
    norms = head.norm(dim=1)
    assert torch.allclose(norms, clip.logit_scale.exp().expand(3), rtol=1e-5)
    # each row is the normalised mean of the normalised prompt embeddings of its class
    tokens = tokenizer("pocket-vit")([t.format("green") for t in templates])
    with torch.no_grad():
        emb = torch.nn.functional.normalize(clip.encode_text(tokens), dim=-1).mean(0)
    assert torch.allclose(head[1] / norms[1], emb / emb.norm(), atol=1e-6)
    save_head(head, classnames, "colors", tmp_path / "head.safetensors")
    assert torch.equal(load_head(tmp_path / "head.safetensors"), head)


def test_classifier_logits_use_the_normalised_image_embedding(clip):
    head = torch.randn(4, clip.text_projection.shape[1])
    classifier = Classifier(clip.visual, head).eval()
    x = torch.randn(5, 3, 32, 32)
    logits = classifier(x)
    assert logits.shape == (5, 4)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.visual(x), dim=-1) @ head.T
    assert torch.allclose(logits.detach(), expected, atol=1e-5)
