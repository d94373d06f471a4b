"""Streaming vectors into models: theta_0 + alpha * vector, written entry by entry
(:func:`write_model`) or collected in memory for small models (:func:`to_state`, :func:`apply`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.tensorfile import write_tensors
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints


def write_model(
    path: str | os.PathLike,
    ckpts: Checkpoints,
    vectors: Iterator[tuple[str, torch.Tensor, torch.Tensor]],
    alpha: float,
    metadata: Mapping | None = None,
) -> None:
    """Write theta_0 + alpha * vector for every float entry (``vectors`` yields them in file
    order as ``(key, base, vector)``), the base's value for the others; atomically. A merged
    entry that is not finite (alpha too large for its dtype) is an error, and nothing is written."""
    vectors = iter(vectors)
    with write_tensors(path, ckpts.specs(), metadata) as put:
        for key in ckpts.keys:
            if key in ckpts.float_keys:
                vkey, base, vector = next(vectors)
                assert vkey == key, (vkey, key)
                merged = (base.float() + alpha * vector).to(base.dtype)
                if not maths.all_finite(merged):
                    raise TallmergeError(
                        f"merged tensor '{key}' is not finite in {str(base.dtype).removeprefix('torch.')} "
                        f"with --alpha {alpha:g}; use a smaller --alpha"
                    )
                put(key, merged)
            else:
                put(key, ckpts.base.get(key))


def to_state(
    ckpts: Checkpoints, vectors: Iterator[tuple[str, torch.Tensor, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Collect a vector stream in memory: ``(base state, {key: vector})``, for small models
    whose vector is scanned over many alphas (the pipeline's selection)."""
    base, vector = {}, {}
    for key, entry, value in vectors:  # the stream has already read each float entry's base
        base[key], vector[key] = entry, value
    return {k: base[k] if k in base else ckpts.base.get(k) for k in ckpts.keys}, vector


def apply(
    base: dict[str, torch.Tensor], vector: Mapping[str, torch.Tensor], alpha: float = 1.0
) -> dict[str, torch.Tensor]:
    """theta_0 + alpha * vector in the base's dtypes (entries without a vector stay as they are)."""
    return {k: (v.float() + alpha * vector[k]).to(v.dtype) if k in vector else v for k, v in base.items()}
