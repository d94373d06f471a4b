"""The optimisation loop every model family trains with: AdamW, a linear warm-up then a cosine
decay (as the paper), and seeded index batches, so a run is a function of its inputs and seed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

if TYPE_CHECKING:  # params.yaml's settings, only named here: the training loop does not import the config
    from tallmerge.params import TrainConfig


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then cosine to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` index batches over ``range(n)``: epochs of fresh permutations, laid end to end."""
    buffer = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while buffer.numel() < batch_size:
            buffer = torch.cat([buffer, torch.randperm(n, generator=generator)])
        yield buffer[:batch_size]
        buffer = buffer[batch_size:]


def optimise(
    params, cfg: TrainConfig, seed: int, stream_of, loss_fn, desc: str, world: int = 1
) -> list[float]:
    """Run ``cfg.steps`` AdamW steps of ``loss_fn(batch, generator)``, one per batch of
    ``stream_of(generator)``; return the loss history (averaged over the ``world`` processes).
    ``generator`` is the run's one seeded random stream."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.steps, cfg.warmup))
    losses = []
    progress = tqdm(range(cfg.steps), desc=desc, disable=None, leave=False)
    for step, batch in zip(progress, stream_of(generator)):
        loss = loss_fn(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        optimizer.step()
        schedule.step()
        loss = loss.detach()
        if world > 1:
            torch.distributed.all_reduce(loss)
            loss /= world
        losses.append(loss.item())
        if step % 10 == 0:
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
