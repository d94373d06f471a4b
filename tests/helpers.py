"""Helpers shared by the tests: small checkpoint cases, running the CLI, a small pocket task,
random Hugging Face CLIPs.

Test files import from here (and from ``reference.py``, ``fakes_*.py``, ``stage_runner.py``),
never from one another.
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from tallmerge.cli import main

# -- checkpoint cases ---------------------------------------------------------------------------
SHAPES = {
    "blocks.0.attn.weight": ((6, 5), torch.float32),
    "blocks.0.attn.bias": ((7,), torch.float32),
    "embed": ((3, 4), torch.float16),
    "scale": ((), torch.float32),
    "position_ids": ((4,), torch.int64),
    "flags": ((3,), torch.bool),
}


def make_case(seed: int, tasks: int, dyadic: bool = True, zero_tasks: tuple[int, ...] = ()):
    """A base and ``tasks`` fine-tuned state dicts; dyadic values are multiples of 1/8 in
    [-2, 2] (many equal magnitudes); integer tensors differ per task (they must be ignored)."""
    g = torch.Generator().manual_seed(seed)

    def values(shape, dtype):
        if dtype == torch.bool:
            return torch.randint(0, 2, shape, generator=g).bool()
        if not dtype.is_floating_point:
            return torch.randint(0, 100, shape, generator=g).to(dtype)
        if dyadic:
            return (torch.randint(-16, 17, shape, generator=g).float() / 8).to(dtype)
        return torch.randn(shape, generator=g).to(dtype)

    base = {k: values(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
    finetuned = []
    for t in range(tasks):
        if t in zero_tasks:
            finetuned.append({k: v.clone() for k, v in base.items()})
        else:
            finetuned.append({k: values(shape, dtype) for k, (shape, dtype) in SHAPES.items()})
    return base, finetuned


def save_case(tmp_path, base, finetuned):
    save_file(base, tmp_path / "base.safetensors")
    paths = {}
    for t, ft in enumerate(finetuned):
        paths[f"task{t}"] = tmp_path / f"task{t}.safetensors"
        save_file(ft, paths[f"task{t}"])
    return tmp_path / "base.safetensors", paths


def assert_same(actual: dict, expected: dict, exact: bool) -> None:
    assert list(actual) == sorted(expected) or set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        if exact or not want.is_floating_point():
            assert torch.equal(got, want), key
        else:
            torch.testing.assert_close(got.float(), want.float(), rtol=1e-5, atol=1e-5, msg=key)


# -- the command line ---------------------------------------------------------------------------
def run(argv, capsys):
    """Run the CLI; return (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        status = 0
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def fails(argv, capsys, *needles):
    status, _, err = run(argv, capsys)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert lines and all(n in lines[-1] for n in needles), err
    return lines[-1]


def finetuned_args(paths):
    return ["--finetuned", *[f"{name}={path}" for name, path in paths.items()]]


# -- a small pocket task ------------------------------------------------------------------------
def small_task(name="colors", n=400):
    """A pocket task with ``n`` generated training images and 200 test ones, as pocket-vit takes them."""
    from tallmerge.clip.batches import ImageSplit
    from tallmerge.clip.models import create_clip, image_stats
    from tallmerge.tasks import get_task

    task = get_task(name)
    stats = image_stats(create_clip("pocket-vit"))
    train = ImageSplit(*map(torch.from_numpy, task.generate("train", n, 0)), *stats)
    test = ImageSplit(*map(torch.from_numpy, task.generate("test", 200, 0)), *stats)
    return task, train, test


# -- Hugging Face CLIPs (the tests that use them skip without transformers) ----------------------
def hf_clip_config(cfg: dict, hidden_act: str = "quick_gelu"):
    """The transformers CLIPConfig of the open_clip config ``cfg``; the end token is the largest
    id (where open_clip pools), the start token the one below it."""
    import transformers

    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    vocab = t["vocab_size"]
    return transformers.CLIPConfig(
        vision_config={
            "image_size": v["image_size"],
            "patch_size": v["patch_size"],
            "hidden_size": v["width"],
            "num_hidden_layers": v["layers"],
            "num_attention_heads": v["width"] // v.get("head_width", 64),
            "intermediate_size": int(v["width"] * v.get("mlp_ratio", 4.0)),
            "hidden_act": hidden_act,
        },
        text_config={
            "vocab_size": vocab,
            "hidden_size": t["width"],
            "num_hidden_layers": t["layers"],
            "num_attention_heads": t["heads"],
            "intermediate_size": int(t["width"] * t.get("mlp_ratio", 4.0)),
            "max_position_embeddings": t["context_length"],
            "hidden_act": hidden_act,
            "bos_token_id": vocab - 2,
            "eos_token_id": vocab - 1,
            "pad_token_id": 0,
        },
        projection_dim=cfg["embed_dim"],
    )


def random_hf_clip(cfg: dict, hidden_act: str = "quick_gelu", seed: int = 0):
    """A random CLIPModel for the open_clip config ``cfg``, every parameter perturbed."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.CLIPModel(hf_clip_config(cfg, hidden_act)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def save_hf_clip(model, folder):
    """``save_pretrained`` into ``folder`` (config.json + model.safetensors); returns ``folder``."""
    model.save_pretrained(folder)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    return folder
