"""Fine-tuned image encoders (and whole pre-trained CLIPs) from elsewhere -> open_clip state dicts.

:func:`import_checkpoint` reads a checkpoint file safely (safetensors, or a torch file through
:mod:`tallmerge.formats.safeload`), recognises its layout, and returns the image encoder in
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

**Whole HF CLIPs.** :func:`convert_hf_clip_model` turns a whole ``CLIPModel`` (as the pre-trained
theta_0, see :mod:`tallmerge.clip.pretrained`) into the state dict of ``open_clip.create_model(arch)``:
the image tower as above under ``visual.``; the text tower's blocks by the same per-block mapping
(q, k, v stacked), its embeddings and final LayerNorm renamed (:data:`TEXT_GLOBAL_KEYS`); the text
projection transposed like the image one (HF ``[embed, width]`` -> open_clip ``[width, embed]``);
``logit_scale`` as is (both store its log). Both libraries pool the text at the end token: open_clip
at the largest token id (``argmax``), HF at the config's ``eos_token_id``, the same place for
CLIP's tokenizer, whose end token is the last of its vocabulary. The ``position_ids`` buffers that
older transformers saved are dropped.

A state dict cannot tell the activation (quick_gelu in OpenAI's CLIPs, gelu in most others) nor
the LayerNorm eps (1e-5 in both libraries by default): choose an open_clip arch that matches the
HF config, e.g. ``ViT-B-32-quickgelu`` for ``openai/clip-vit-base-patch32``. What can be checked
is checked by :func:`check_visual_state`: every key and shape of the target arch.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch

from tallmerge.clip.models import VISUAL_PREFIX, check_state, create_clip
from tallmerge.errors import TallmergeError
from tallmerge.formats import safeload
from tallmerge.formats.files import load_tensors

VISION_PREFIX = "vision_model."
PROJECTION = "visual_projection.weight"
TEXT_PREFIX = "text_model."
TEXT_PROJECTION = "text_projection.weight"
LOGIT_SCALE = "logit_scale"
OTHER_TOWER = (TEXT_PREFIX, TEXT_PROJECTION, LOGIT_SCALE)
"""Keys of a whole ``CLIPModel`` outside its image encoder, ignored by the image-encoder import."""
DROPPED = ("embeddings.position_ids",)
"""A constant buffer (``arange``) that transformers < 4.31 saved in checkpoints (in each tower)."""

GLOBAL_KEYS = {  # HF key below the vision prefix -> open_clip key
    "embeddings.class_embedding": "class_embedding",
    "embeddings.position_embedding.weight": "positional_embedding",
    "embeddings.patch_embedding.weight": "conv1.weight",
    "pre_layrnorm.weight": "ln_pre.weight",  # sic: HF's spelling
    "pre_layrnorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight",
    "post_layernorm.bias": "ln_post.bias",
}
TEXT_GLOBAL_KEYS = {  # HF key below the text prefix -> open_clip key (top level of the CLIP)
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
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
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""The weights file of a Hugging Face model folder, in order of preference."""


def hf_weights_in(folder: Path) -> Path:
    """The weights file of a Hugging Face model folder (see :data:`HF_WEIGHTS`)."""
    for name in HF_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise TallmergeError(
        f"{folder}: holds neither {' nor '.join(HF_WEIGHTS)} (expected a Hugging Face model folder)"
    )


def import_checkpoint(path: str | os.PathLike, arch: str) -> dict[str, torch.Tensor]:
    """The image encoder in a checkpoint file (or a Hugging Face model folder), as an open_clip
    ``arch`` ``visual`` state dict."""
    path = Path(path)
    if path.is_dir():
        path = hf_weights_in(path)
    if path.suffix == ".safetensors":
        state, _ = load_tensors(path)
    elif path.suffix in TORCH_SUFFIXES:
        state = safeload.load_state_dict(path)
    else:
        raise TallmergeError(
            f"{path}: unknown checkpoint type (expected .safetensors or one of {', '.join(TORCH_SUFFIXES)})"
        )
    return to_visual(state, arch, str(path))


def to_visual(
    state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Recognise ``state``'s layout (see the module doc) and return its image encoder for ``arch``."""
    if any(k.startswith(VISION_PREFIX) or LAYER.fullmatch(k) or k in GLOBAL_KEYS for k in state):
        return convert_hf_clip(state, arch, source)
    for prefix in OPEN_CLIP_PREFIXES:
        if f"{prefix}conv1.weight" in state:
            visual = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            check_visual_state(visual, arch, source)
            return visual
    sample = ", ".join(f"'{k}'" for k in list(state)[:3])
    raise TallmergeError(
        f"{source}: neither an open_clip image encoder nor a Hugging Face CLIP vision checkpoint (keys {sample}, ...)"
    )


def convert_hf_clip(
    state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict"
) -> dict[str, torch.Tensor]:
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
    visual.update(convert_blocks(vision, layers, prefix, source))
    return visual


def convert_blocks(
    tower: Mapping[str, torch.Tensor], layers: int, prefix: str, source: str
) -> dict[str, torch.Tensor]:
    """A HF CLIP tower's ``encoder.layers.{i}.*`` (keys below the tower's ``prefix``) as open_clip's
    ``transformer.resblocks.{i}.*``: q, k, v stacked into ``attn.in_proj_*``, the rest renamed."""
    blocks = {}
    for i in range(layers):
        hf, oc = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            q, k, v = (tower[f"{hf}self_attn.{p}.{kind}"] for p in QKV)
            if not q.shape == k.shape == v.shape:
                raise TallmergeError(f"{source}: '{prefix}{hf}self_attn' q, k, v {kind} shapes differ")
            blocks[f"{oc}attn.in_proj_{kind}"] = torch.cat([q, k, v])
        blocks.update({oc + o: tower[hf + h] for h, o in LAYER_KEYS.items()})
    return blocks


def is_hf_clip(keys: Iterable[str]) -> bool:
    """Whether state-dict ``keys`` are a whole HF ``CLIPModel``'s (or at least one of its towers)."""
    return any(k.startswith((VISION_PREFIX, TEXT_PREFIX)) for k in keys)


def convert_hf_clip_model(
    state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """A whole HF ``CLIPModel`` state dict as the state dict of ``open_clip.create_model(arch)``,
    checked key by key and shape by shape (the first mismatch is a one-line error)."""
    whole = hf_clip_to_open_clip(state, source)
    check_state(whole, clip_shapes(arch), source, arch)
    return whole


def hf_clip_to_open_clip(
    state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename and restack a whole HF ``CLIPModel`` state dict into open_clip CLIP's layout."""
    visual = {VISUAL_PREFIX + k: v for k, v in hf_to_open_clip(state, source).items()}
    return {**visual, **hf_text_to_open_clip(state, source)}


def hf_text_to_open_clip(
    state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """A whole HF ``CLIPModel``'s text tower, text projection and logit scale under open_clip
    CLIP's (top-level) keys; the image tower is left to :func:`hf_to_open_clip`."""
    text = {k[len(TEXT_PREFIX) :]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
    if not text:
        raise TallmergeError(
            f"{source}: no text tower ('{TEXT_PREFIX}*' keys): a whole Hugging Face CLIPModel is needed"
        )
    text = {k: v for k, v in text.items() if k not in DROPPED}
    layers = layer_count(text)
    check_hf_keys(text, layers, TEXT_PREFIX, source, TEXT_GLOBAL_KEYS, "text")
    for key in (TEXT_PROJECTION, LOGIT_SCALE):
        if key not in state:
            raise TallmergeError(
                f"{source}: missing key '{key}' (incomplete Hugging Face CLIPModel state dict)"
            )
    converted = {oc: text[hf] for hf, oc in TEXT_GLOBAL_KEYS.items()}
    converted.update(convert_blocks(text, layers, TEXT_PREFIX, source))
    converted["text_projection"] = state[TEXT_PROJECTION].t().contiguous()
    converted["logit_scale"] = state[LOGIT_SCALE]
    return converted


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
            if key[len(prefix) :] not in DROPPED:
                vision[key[len(prefix) :]] = value
        elif not key.startswith(OTHER_TOWER):
            raise TallmergeError(
                f"{source}: unexpected key '{key}' (not a Hugging Face CLIP vision state dict)"
            )
    return vision, projection, prefix


def layer_count(vision: Mapping[str, torch.Tensor]) -> int:
    """One more than the highest ``encoder.layers.{i}`` index (0 without any)."""
    return max((int(m.group(1)) + 1 for k in vision if (m := LAYER.fullmatch(k))), default=0)


def hf_keys(layers: int, global_keys: Iterable[str] = GLOBAL_KEYS) -> Iterator[str]:
    """Every key (below the tower prefix) of a HF CLIP tower with ``layers`` blocks: by default
    the image encoder's (:data:`TEXT_GLOBAL_KEYS` for the text tower's)."""
    yield from global_keys
    for i in range(layers):
        yield from (f"encoder.layers.{i}.{suffix}" for suffix in LAYER_SUFFIXES)


def is_hf_key(key: str, global_keys: Iterable[str] = GLOBAL_KEYS) -> bool:
    return key in global_keys or bool((m := LAYER.fullmatch(key)) and m.group(2) in LAYER_SUFFIXES)


def check_hf_keys(
    tower: Mapping[str, torch.Tensor],
    layers: int,
    prefix: str,
    source: str,
    global_keys: Iterable[str] = GLOBAL_KEYS,
    name: str = "vision",
) -> None:
    """Refuse anything but exactly the keys of a HF CLIP tower (by default the image encoder),
    naming the first culprit."""
    for key in tower:
        if not is_hf_key(key, global_keys):
            raise TallmergeError(
                f"{source}: unexpected key '{prefix}{key}' (not a Hugging Face CLIP {name} state dict)"
            )
    for key in hf_keys(layers, global_keys):
        if key not in tower:
            raise TallmergeError(
                f"{source}: missing key '{prefix}{key}' (incomplete Hugging Face CLIP {name} state dict)"
            )


def check_visual_state(state: Mapping[str, torch.Tensor], arch: str, source: str = "state dict") -> None:
    """Check an open_clip image-encoder state dict against architecture ``arch``: the first
    missing, misshapen or unexpected tensor (in the model's own key order) is a one-line error."""
    check_state(state, visual_shapes(arch), source, arch)


@functools.cache
def clip_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the whole ``arch`` CLIP, in ``state_dict()`` order (built once per arch)."""
    return {k: tuple(v.shape) for k, v in create_clip(arch).state_dict().items()}


def visual_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``arch``'s image encoder (keys without ``visual.``), in ``state_dict()`` order."""
    return {k[len(VISUAL_PREFIX) :]: s for k, s in clip_shapes(arch).items() if k.startswith(VISUAL_PREFIX)}
