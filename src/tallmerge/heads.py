"""Zero-shot classification heads, built once from the text tower and then frozen.

A head is CLIP's zero-shot classifier: for each class, the normalised mean of the normalised text
embeddings of the task's prompt templates filled with the class name, scaled by CLIP's logit
scale. An image's logits are its normalised image embedding times the head.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tallmerge.errors import TallmergeError
from tallmerge.io import load_tensors, save_tensors


@torch.no_grad()
def zeroshot_head(model: nn.Module, tokenize, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """The ``[classes, embed_dim]`` zero-shot head, with the logit scale folded in."""
    model.eval()
    rows = []
    for name in classnames:
        tokens = tokenize([template.format(name) for template in templates])
        embeddings = F.normalize(model.encode_text(tokens), dim=-1)
        rows.append(F.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(rows) * model.logit_scale.exp()


class Classifier(nn.Module):
    """An image encoder followed by a frozen head: ``logits = normalize(encoder(x)) @ head.T``."""

    def __init__(self, encoder: nn.Module, head: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("head", head.detach().clone())
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: uint8 ``[N, H, W, 3]`` as the tasks store them."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        return F.normalize(self.encoder(x), dim=-1) @ self.head.T


def save_head(head: torch.Tensor, classnames: Sequence[str], task: str, path: str | os.PathLike) -> None:
    save_tensors({"weight": head}, path, metadata={"task": task, "classnames": list(classnames)})


def load_head(path: str | os.PathLike) -> torch.Tensor:
    tensors, _ = load_tensors(path)
    if set(tensors) != {"weight"} or tensors["weight"].ndim != 2:
        raise TallmergeError(f"{path}: not a classification head (expected one 2-D tensor 'weight')")
    return tensors["weight"]
