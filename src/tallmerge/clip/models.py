"""The model registry and factory: every CLIP architecture comes from open_clip by name.

tallmerge registers its own small configs (``model_configs/*.json``, e.g. ``pocket-vit``) with
open_clip at import, so a pocket model and a real ``ViT-B-32`` are created, tokenised and
preprocessed by the same code. Nothing outside this module knows an architecture's details.

On disk a CLIP is two safetensors files: the image encoder (``model.visual``'s state dict, the
only part that is fine-tuned, merged and compressed) and the rest (text tower, logit scale).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import open_clip
import torch
from torch import nn

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import load_tensors, save_tensors

CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(CONFIG_DIR)

VISUAL_PREFIX = "visual."


def available_models() -> list[str]:
    return open_clip.list_models()


def create_clip(arch: str, seed: int = 0) -> nn.Module:
    """A randomly initialised open_clip CLIP of architecture ``arch`` (deterministic in seed)."""
    if arch not in open_clip.list_models():
        pocket = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise TallmergeError(f"unknown model arch {arch!r}; pocket configs: {', '.join(pocket)}")
    torch.manual_seed(seed)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded
    try:
        return open_clip.create_model(arch, pretrained=None)
    finally:
        logger.setLevel(level)


def tokenizer(arch: str):
    return open_clip.get_tokenizer(arch)


def image_stats(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std the model's image tower expects."""
    visual = model.visual
    return tuple(visual.image_mean), tuple(visual.image_std)


def image_transform(model: nn.Module, train: bool = False):
    """The model's own open_clip preprocessing of a PIL image (resize, crop, normalize), with
    open_clip's training augmentation (a random resized crop) when ``train``."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=train)


def save_clip(
    model: nn.Module, arch: str, visual_path: str | os.PathLike, rest_path: str | os.PathLike
) -> None:
    """Write the image encoder and the rest of the model as two safetensors files."""
    state = model.state_dict()
    visual = {k[len(VISUAL_PREFIX) :]: v for k, v in state.items() if k.startswith(VISUAL_PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(VISUAL_PREFIX)}
    save_visual(visual, arch, visual_path)
    save_tensors(rest, rest_path, metadata={"arch": arch, "part": "text"})


def save_visual(state: dict[str, torch.Tensor], arch: str, path: str | os.PathLike, **metadata) -> None:
    """Write an image-encoder state dict (keys without the ``visual.`` prefix)."""
    save_tensors(state, path, metadata={"arch": arch, "part": "visual", **metadata})


def load_clip(arch: str, visual_path: str | os.PathLike, rest_path: str | os.PathLike) -> nn.Module:
    """Rebuild a whole CLIP from the two files written by :func:`save_clip`."""
    model = create_clip(arch)
    rest, _ = load_tensors(rest_path)
    load_strict(model, rest, rest_path, ignore_prefix=VISUAL_PREFIX)
    load_visual(model, visual_path)
    model.eval()
    return model


def load_visual(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an image-encoder checkpoint into ``model.visual``, checking keys and shapes."""
    state, _ = load_tensors(path)
    load_strict(model.visual, state, path)
    return model


def load_strict(
    module: nn.Module, state: dict[str, torch.Tensor], path, ignore_prefix: str | None = None
) -> None:
    """Load ``state`` into ``module``; a missing, unexpected or misshapen tensor is a one-line
    error naming ``path`` and the tensor."""
    expected = {
        k: tuple(v.shape)
        for k, v in module.state_dict().items()
        if ignore_prefix is None or not k.startswith(ignore_prefix)
    }
    check_state(state, expected, path, "the model")
    module.load_state_dict(state, strict=ignore_prefix is None)


def check_state(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source, owner: str
) -> None:
    """``state`` must have exactly the ``expected`` keys and shapes; the first missing, misshapen
    or unexpected tensor (in ``expected``'s order) is a one-line error naming ``source``."""
    for key, shape in expected.items():
        if key not in state:
            raise TallmergeError(f"{source}: missing tensor '{key}' for {owner} (wrong architecture?)")
        if tuple(state[key].shape) != shape:
            raise TallmergeError(
                f"{source}: tensor '{key}' has shape {tuple(state[key].shape)}, {owner} expects {shape} (wrong architecture?)"
            )
    for key in state:
        if key not in expected:
            raise TallmergeError(f"{source}: unexpected tensor '{key}' for {owner} (wrong architecture?)")
