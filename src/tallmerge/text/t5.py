"""T5 models: the pocket configurations by name and the one factory, for the pocket model and a
local Hugging Face folder alike (``T5ForConditionalGeneration`` of ``transformers``).

A checkpoint is every float tensor of the model once: the shared embedding (``shared.weight``;
the aliases that read it, ``encoder.embed_tokens`` and ``decoder.embed_tokens``, are not
repeated), every layer, and the output projection ``lm_head.weight`` where it is a matrix of its
own (T5 v1.1 and LM-adapt checkpoints; transformers 5 ties it to ``shared`` in a T5 it builds
afresh, such as the pocket one). All of it is fine-tuned and all of it is merged, as the paper
counts the whole model in its storage.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import T5Config, T5ForConditionalGeneration
from transformers.utils import logging as hf_logging

from tallmerge.errors import TallmergeError

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

CONFIGS = {
    # T5 v1.1's design (gated-GELU feed-forward; `tie_word_embeddings: false` there means decoder
    # outputs are not rescaled), scaled down to train on two CPU cores: about 0.9 M weights with
    # the pocket vocabulary.
    "pocket-t5": dict(
        d_model=128,
        d_kv=32,
        d_ff=256,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=64,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
    ),
}
"""Pocket T5 architectures by name (``text.model.arch``); the vocabulary size comes from the
tokenizer."""


def pocket_config(arch: str, vocab_size: int, pad_id: int, eos_id: int) -> T5Config:
    if arch not in CONFIGS:
        raise TallmergeError(f"unknown T5 architecture {arch!r}; available: {', '.join(CONFIGS)}")
    return T5Config(
        vocab_size=vocab_size,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        **CONFIGS[arch],
    )


def create_t5(config: T5Config, seed: int | None = None) -> T5ForConditionalGeneration:
    """A T5 of ``config`` in evaluation mode, randomly initialised from ``seed`` when given."""
    if seed is not None:
        torch.manual_seed(seed)
    return T5ForConditionalGeneration(config).eval()


def device() -> torch.device:
    """Where T5s train and are evaluated: a GPU when there is one (float32), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_config(folder: str | os.PathLike) -> T5Config:
    """The config of a Hugging Face T5 folder (``config.json``), refused in one line otherwise."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise TallmergeError(
            f"{path}: missing; a T5 model folder holds config.json (save_pretrained writes it)"
        )
    try:
        config = T5Config.from_json_file(path)
    except (OSError, ValueError) as e:
        raise TallmergeError(f"{path}: not a readable T5 config ({e})") from None
    if config.model_type != "t5":
        raise TallmergeError(f"{path}: model_type is {config.model_type!r}, not a T5 model")
    return config


def from_folder(folder: str | os.PathLike) -> T5ForConditionalGeneration:
    """The pre-trained T5 of a local Hugging Face folder (single file or sharded, any dtype),
    in float32; nothing is downloaded."""
    config = load_config(folder)
    try:
        model = T5ForConditionalGeneration.from_pretrained(folder, config=config, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        raise TallmergeError(f"{folder}: cannot load its T5 weights ({str(e).splitlines()[0]})") from None
    return model.eval()


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every float tensor of ``model`` once (tied aliases under their first name), in place."""
    named = dict(model.named_parameters())
    named.update((k, b) for k, b in model.named_buffers() if b.is_floating_point())
    return {k: v.detach() for k, v in named.items()}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint of ``model``: every float tensor once, on the CPU."""
    return {k: v.cpu() for k, v in _tensors(model).items()}


def load_weights(model: torch.nn.Module, state, source: str | os.PathLike) -> None:
    """Load a checkpoint of :func:`weights`'s keys into ``model``, refusing any other set of
    keys or shapes in one line naming ``source``."""
    expected = _tensors(model)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"has '{extra[0]}', which this T5 has not"
        raise TallmergeError(f"{source}: not a checkpoint of this T5 ({what})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise TallmergeError(
                f"{source}: '{k}' has shape {tuple(state[k].shape)}, this T5 has {tuple(v.shape)}"
            )
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(state[k])
