"""Training loops: contrastive pre-training of a CLIP, and fine-tuning an image encoder under a
frozen zero-shot head. Both use AdamW with a linear warm-up then a cosine decay, as the paper.

Batches of positions are drawn by a seeded generator (and any augmentation is seeded per image),
so a run is a function of its inputs and seed: on CPU, the same params give byte-identical weights. Fine-tuning runs on
the :mod:`tallmerge.clip.runtime` device (a GPU with bf16 autocast when there is one) and, under
``torchrun``, on several processes (DDP), each taking an equal share of every batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from tallmerge.clip import runtime
from tallmerge.clip.batches import Split
from tallmerge.clip.heads import Classifier
from tallmerge.errors import TallmergeError
from tallmerge.training import batches, optimise

if TYPE_CHECKING:  # params.yaml's settings, only named here: the model layer does not import the config
    from tallmerge.params import TrainConfig


def pretrain_clip(
    model: nn.Module,
    images: torch.Tensor,
    concepts: torch.Tensor,
    captions: torch.Tensor,
    caption_counts: torch.Tensor,
    mean,
    std,
    cfg: TrainConfig,
    seed: int,
) -> list[float]:
    """Contrastive image-text pre-training on captioned images.

    ``images`` uint8 ``[N, H, W, 3]``; ``concepts[i]`` is what image ``i`` shows; the captions
    of concept ``c`` are the token rows ``captions[c, :caption_counts[c]]``. At every step each
    concept gets one freshly drawn caption, and the symmetric InfoNCE loss pairs the batch's
    images with those captions: an image's positive is its concept's caption, a caption's
    positives are all the batch's images of its concept. (A small world repeats its concepts
    within a batch, so encoding one caption per concept is both exact and cheaper than one
    caption per image.)
    """
    model.train()
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    all_concepts = torch.arange(len(captions))

    def loss_fn(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pick = (torch.rand(len(captions), generator=generator) * caption_counts).long()
        tokens = captions[all_concepts, pick]
        x = (images[idx].permute(0, 3, 1, 2).float().div_(255.0) - mean_t) / std_t
        image_features, text_features, logit_scale = model(x, tokens)[:3]
        logits = logit_scale * image_features @ text_features.T  # [batch, concepts]
        concept = concepts[idx]
        present = torch.unique(concept)
        targets = (concept[None, :] == present[:, None]).float()
        targets /= targets.sum(dim=1, keepdim=True)
        return 0.5 * (F.cross_entropy(logits, concept) + F.cross_entropy(logits.T[present], targets))

    stream_of = lambda generator: batches(len(images), cfg.batch_size, cfg.steps, generator)  # noqa: E731
    losses = optimise(model.parameters(), cfg, seed, stream_of, loss_fn, desc="pretrain")
    model.eval()
    return losses


def finetune(
    classifier: Classifier, split: Split, cfg: TrainConfig, seed: int, desc: str = "finetune"
) -> list[float]:
    """Fine-tune ``classifier.encoder`` on ``split`` with cross-entropy; the head stays frozen.

    Runs on this process's :func:`runtime.current` device; under DDP every process draws the
    same seeded batch of positions and reads only its share of it. The classifier is back on
    the CPU afterwards."""
    rt = runtime.current()
    if cfg.batch_size % rt.world:
        raise TallmergeError(f"batch size {cfg.batch_size} does not split evenly over {rt.world} processes")
    classifier.to(rt.device).train()
    model = classifier
    if rt.world > 1:
        model = nn.parallel.DistributedDataParallel(
            classifier, device_ids=[rt.device] if rt.device.type == "cuda" else None
        )

    def stream_of(generator: torch.Generator):
        return split.batches(
            batches(len(split), cfg.batch_size, cfg.steps, generator), seed=seed, share=(rt.rank, rt.world)
        )

    def loss_fn(batch, generator: torch.Generator) -> torch.Tensor:
        x, y = (t.to(rt.device, non_blocking=True) for t in batch)
        with rt.autocast():
            return F.cross_entropy(model(x).float(), y)

    losses = optimise(
        classifier.encoder.parameters(), cfg, seed, stream_of, loss_fn, desc=desc, world=rt.world
    )
    classifier.to("cpu").eval()
    return losses


@torch.no_grad()
def accuracy(classifier: Classifier, split: Split, batch_size: int = 512) -> float:
    """Top-1 accuracy in percent on the whole split."""
    classifier.eval()
    device = next(classifier.parameters()).device
    correct = 0
    for x, y in split.in_order(batch_size):
        correct += (classifier(x.to(device)).argmax(dim=1).cpu() == y).sum().item()
    return 100.0 * correct / len(split)
