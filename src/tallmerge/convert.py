"""Fine-tuned image encoders from elsewhere -> open_clip image-encoder state dicts.

:func:`import_checkpoint` reads a checkpoint file safely (safetensors, or a torch file through
:mod:`tallmerge.safeload`), recognises its layout, and returns the image encoder in
``open_clip.create_model(arch).visual``'s layout, checked key by key and shape by shape:

* Hugging Face ``transformers`` CLIP vision models (below);
* open_clip CLIP state dicts (``visual.*``; the text tower is dropped), the task-vectors /
  TALL-mask projects' pickled ``ImageEncoder`` (``model.visual.*``), DDP-wrapped ones
  (``module.visual.*``), and bare image-encoder state dicts.

**Hugging Face.**
Many public fine-tuned CLIPs are ``transformers`` checkpoints, while tallmerge keeps an image
encoder as the state dict of ``open_clip.create_model(arch).visual``. Both libraries implement
the same ViT under different names, with two structural differences:

* HF keeps the query, key and value projections as three ``Linear`` layers; open_clip's
  ``nn.MultiheadAttention`` stores them stacked as one ``in_proj`` (q, k, v in that order);
* HF's image projection is a bias-free ``Linear`` (``y = W x``), open_clip's ``proj`` a matrix
  applied on the right (``y = x @ proj``), so ``proj = W.T``.

Accepted inputs are the state dicts of ``CLIPVisionModel`` / ``CLIPVisionModelWithProjection``
(keys with or without the ``vision_model.`` prefix) and of a whole ``CLIPModel`` (its text tower
is ignored). Anything else is refused, naming the first unexpected or missing key.

A state dict cannot tell the activation (quick_gelu in OpenAI's CLIPs, gelu in most others) nor
the LayerNorm eps (1e-5 in both libraries by default): choose an open_clip arch that matches the
HF config, e.g. ``ViT-B-32-quickgelu`` for ``openai/clip-vit-base-patch32``. What can be checked
is checked by :func:`check_visual_state`: every key and shape of the target arch.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Iterator, Mapping

import torch

from tallmerge import safeload
from tallmerge.errors import TallmergeError
from tallmerge.io import load_tensors
from tallmerge.models import check_state, create_clip

VISION_PREFIX = "vision_model."
PROJECTION = "visual_projection.weight"
OTHER_TOWER = ("text_model.", "text_projection.", "logit_scale")
"""Keys of a whole ``CLIPModel`` outside its image encoder, ignored."""
DROPPED = ("embeddings.position_ids",)
"""A constant buffer (``arange``) that transformers < 4.31 saved in checkpoints."""

GLOBAL_KEYS = {  # HF key below the vision prefix -> open_clip key
    "embeddings.class_embedding": "class_embedding",
    "embeddings.position_embedding.weight": "positional_embedding",
    "embeddings.patch_embedding.weight": "conv1.weight",
    "pre_layrnorm.weight": "ln_pre.weight",  # sic: HF's spelling
    "pre_layrnorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight",
    "post_layernorm.bias": "ln_post.bias",
}
LAYER_KEYS = {  # below encoder.layers.{i}. -> below transformer.resblocks.{i}.
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}
QKV = ("q_proj", "k_proj", "v_proj")
"""Stacked in this order into ``attn.in_proj_weight`` / ``attn.in_proj_bias``."""
LAYER_SUFFIXES = [f"self_attn.{p}.{kind}" for p in QKV for kind in ("weight", "bias")] + list(LAYER_KEYS)
LAYER = re.compile(r"encoder\.layers\.(0|[1-9][0-9]*)\.(.+)")


OPEN_CLIP_PREFIXES = ("", "visual.", "model.visual.", "module.visual.", "module.model.visual.")
"""Where an open_clip image encoder sits in the checkpoints we read (tried in this order)."""
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def import_checkpoint(path: str | os.PathLike, arch: str) -> dict[str, torch.Tensor]:
    """The image encoder in a checkpoint file, as an open_clip ``arch`` ``visual`` state dict."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state, _ = load_tensors(path)
    elif path.suffix in TORCH_SUFFIXES:
        state = safeload.load_state_dict(path)
    else:
        raise TallmergeError(f"{path}: unknown checkpoint type (expected .safetensors or one of {', '.join(TORCH_SUFFIXES)})")
    return to_visual(state, arch, str(path))


def to_visual(state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict") -> dict[str, torch.Tensor]:
    """Recognise ``state``'s layout (see the module doc) and return its image encoder for ``arch``."""
    if any(k.startswith(VISION_PREFIX) or LAYER.fullmatch(k) or k in GLOBAL_KEYS for k in state):
        return convert_hf_clip(state, arch, source)
    for prefix in OPEN_CLIP_PREFIXES:
        if f"{prefix}conv1.weight" in state:
            visual = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            check_visual_state(visual, arch, source)
            return visual
    sample = ", ".join(f"'{k}'" for k in list(state)[:3])
    raise TallmergeError(f"{source}: neither an open_clip image encoder nor a Hugging Face CLIP vision checkpoint (keys {sample}, ...)")


def convert_hf_clip(state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict") -> dict[str, torch.Tensor]:
    """A HF CLIP vision state dict as an open_clip image encoder of architecture ``arch``."""
    visual = hf_to_open_clip(state, source)
    check_visual_state(visual, arch, source)
    return visual


def hf_to_open_clip(state: Mapping[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Rename and restack a HF CLIP vision state dict into open_clip's ``visual`` layout.

    The result has ``proj`` only if the input has ``visual_projection.weight``. Tensors are
    shared with ``state`` except the stacked ``in_proj`` and the transposed ``proj``."""
    vision, projection, prefix = split_vision(state, source)
    layers = layer_count(vision)
    check_hf_keys(vision, layers, prefix, source)
    visual = {oc: vision[hf] for hf, oc in GLOBAL_KEYS.items()}
    if projection is not None:
        visual["proj"] = projection.t().contiguous()
    for i in range(layers):
        hf, oc = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            q, k, v = (vision[f"{hf}self_attn.{p}.{kind}"] for p in QKV)
            if not q.shape == k.shape == v.shape:
                raise TallmergeError(f"{source}: '{prefix}{hf}self_attn' q, k, v {kind} shapes differ")
            visual[f"{oc}attn.in_proj_{kind}"] = torch.cat([q, k, v])
        visual.update({oc + o: vision[hf + h] for h, o in LAYER_KEYS.items()})
    return visual


def split_vision(
    state: Mapping[str, torch.Tensor], source: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, str]:
    """``(image-encoder tensors keyed without the vision prefix, visual_projection.weight or None,
    the prefix the input uses)``; a whole CLIPModel's text tower is dropped."""
    prefix = VISION_PREFIX if any(k.startswith(VISION_PREFIX) for k in state) else ""
    vision, projection = {}, None
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TallmergeError(f"{source}: '{key}' is not a tensor (not a Hugging Face CLIP state dict)")
        if key == PROJECTION:
            projection = value
        elif key.startswith(prefix):
            if key[len(prefix):] not in DROPPED:
                vision[key[len(prefix):]] = value
        elif not key.startswith(OTHER_TOWER):
            raise TallmergeError(f"{source}: unexpected key '{key}' (not a Hugging Face CLIP vision state dict)")
    return vision, projection, prefix


def layer_count(vision: Mapping[str, torch.Tensor]) -> int:
    """One more than the highest ``encoder.layers.{i}`` index (0 without any)."""
    return max((int(m.group(1)) + 1 for k in vision if (m := LAYER.fullmatch(k))), default=0)


def hf_keys(layers: int) -> Iterator[str]:
    """Every key (below the vision prefix) of a HF CLIP image encoder with ``layers`` blocks."""
    yield from GLOBAL_KEYS
    for i in range(layers):
        yield from (f"encoder.layers.{i}.{suffix}" for suffix in LAYER_SUFFIXES)


def is_hf_key(key: str) -> bool:
    return key in GLOBAL_KEYS or bool((m := LAYER.fullmatch(key)) and m.group(2) in LAYER_SUFFIXES)


def check_hf_keys(vision: Mapping[str, torch.Tensor], layers: int, prefix: str, source: str) -> None:
    """Refuse anything but exactly the keys of a HF CLIP image encoder, naming the first culprit."""
    for key in vision:
        if not is_hf_key(key):
            raise TallmergeError(f"{source}: unexpected key '{prefix}{key}' (not a Hugging Face CLIP vision state dict)")
    for key in hf_keys(layers):
        if key not in vision:
            raise TallmergeError(f"{source}: missing key '{prefix}{key}' (incomplete Hugging Face CLIP vision state dict)")


def check_visual_state(state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict") -> None:
    """Check an open_clip image-encoder state dict against architecture ``arch``: the first
    missing, misshapen or unexpected tensor (in the model's own key order) is a one-line error."""
    check_state(state, visual_shapes(arch), source, arch)


@functools.cache
def visual_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``arch``'s image encoder, in ``state_dict()`` order (built once per arch)."""
    return {k: tuple(v.shape) for k, v in create_clip(arch).visual.state_dict().items()}
