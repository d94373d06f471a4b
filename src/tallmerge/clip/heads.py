"""Zero-shot classification heads, built once from the text tower and then frozen.

A head is CLIP's zero-shot classifier: for each class, the normalised mean of the normalised text
embeddings of the task's prompt templates filled with the class name, scaled by CLIP's logit
scale. An image's logits are its normalised image embedding times the head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import load_tensors, save_tensors


@torch.no_grad()
def zeroshot_head(
    model: nn.Module, tokenize, classnames: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """The ``[classes, embed_dim]`` zero-shot head, with the logit scale folded in."""
    model.eval()
    rows = []
    for name in classnames:
        tokens = tokenize([template.format(name) for template in templates])
        embeddings = F.normalize(model.encode_text(tokens), dim=-1)
        rows.append(F.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(rows) * model.logit_scale.exp()


class Classifier(nn.Module):
    """An image encoder followed by a frozen head: ``logits = normalize(encoder(x)) @ head.T``,
    for ``x`` preprocessed as the encoder expects (see :class:`tallmerge.clip.batches.Split`)."""

    def __init__(self, encoder: nn.Module, head: torch.Tensor):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("head", head.detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(images), dim=-1) @ self.head.T


def save_head(head: torch.Tensor, classnames: Sequence[str], task: str, path: str | os.PathLike) -> None:
    save_tensors({"weight": head}, path, metadata={"task": task, "classnames": list(classnames)})


def load_head(path: str | os.PathLike) -> torch.Tensor:
    tensors, _ = load_tensors(path)
    if set(tensors) != {"weight"} or tensors["weight"].ndim != 2:
        raise TallmergeError(f"{path}: not a classification head (expected one 2-D tensor 'weight')")
    return tensors["weight"]
