"""Training a T5: span-corruption pre-training on a corpus, and full fine-tuning on one task.

- **Span corruption** (T5's objective): 15 % of each text's tokens, in spans of mean length 3,
  are replaced by one sentinel per span in the input; the target lists each sentinel followed by
  the tokens it hid.
- **Fine-tuning**: every weight of the model learns to write the right answer choice as its
  target (teacher forcing, cross-entropy), as T0-style multitask models are trained.

Both run :func:`tallmerge.training.optimise` (AdamW, warm-up then cosine), with batches and span
positions drawn from the run's one seeded generator, so on CPU the same inputs and seed give
byte-identical weights. They train on whatever device the model is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from tallmerge.text.tasks import Example
from tallmerge.training import batches, optimise

if TYPE_CHECKING:
    from tallmerge.params import TrainConfig

NOISE_DENSITY = 0.15
MEAN_SPAN = 3.0


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Rows of ids as one ``[len(rows), longest]`` int64 tensor, right-padded with ``value``."""
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def _segments(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` items cut into ``parts`` non-empty runs at random: the run lengths."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else []
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(int)


def corrupt(ids: Sequence[int], sentinels: Sequence[int], eos: int, rng: np.random.Generator):
    """T5 span corruption of one tokenized text (``ids`` without its end token): the input with
    each noise span replaced by a sentinel, and the target of sentinels and hidden tokens; both
    end with ``eos``."""
    n = len(ids)
    noise = min(max(1, round(n * NOISE_DENSITY)), n - 1) if n > 1 else 0
    if noise == 0:
        return list(ids) + [eos], [sentinels[0], eos]
    spans = max(1, min(round(noise / MEAN_SPAN), noise, n - noise, len(sentinels)))
    noise_runs, keep_runs = _segments(noise, spans, rng), _segments(n - noise, spans, rng)
    inputs, targets, at = [], [], 0
    for i in range(spans):
        inputs += ids[at : at + keep_runs[i]]
        at += keep_runs[i]
        inputs.append(sentinels[i])
        targets += [sentinels[i], *ids[at : at + noise_runs[i]]]
        at += noise_runs[i]
    return inputs + [eos], targets + [eos]


def _loss(model, inputs: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Teacher-forced cross-entropy of ``targets`` given ``inputs``, on the model's device."""
    device = model.device
    inputs, targets = inputs.to(device), targets.to(device)
    labels = targets.masked_fill(targets == pad_id, -100)
    return model(input_ids=inputs, attention_mask=(inputs != pad_id).long(), labels=labels).loss


def pretrain_t5(
    model,
    texts: Sequence[Sequence[int]],
    sentinels: Sequence[int],
    pad_id: int,
    eos: int,
    cfg: TrainConfig,
    seed: int,
) -> list[float]:
    """Span-corruption pre-training on tokenized ``texts`` (ids without the end token)."""
    model.train()

    def loss_fn(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        pairs = [corrupt(list(texts[i]), sentinels, eos, rng) for i in idx.tolist()]
        return _loss(model, pad([p[0] for p in pairs], pad_id), pad([p[1] for p in pairs], pad_id), pad_id)

    stream_of = lambda generator: batches(len(texts), cfg.batch_size, cfg.steps, generator)  # noqa: E731
    losses = optimise(model.parameters(), cfg, seed, stream_of, loss_fn, desc="pretrain")
    model.eval()
    return losses


def encode_examples(tokenizer, examples: Sequence[Example], max_input: int) -> tuple[list, list]:
    """Each example's input ids (truncated to ``max_input``, end token kept) and each of its
    choices' ids, both ending with the end token."""
    inputs = tokenizer([e.input for e in examples])["input_ids"]
    inputs = [ids if len(ids) <= max_input else ids[: max_input - 1] + ids[-1:] for ids in inputs]
    flat = tokenizer([c for e in examples for c in e.choices])["input_ids"]
    choices, at = [], 0
    for e in examples:
        choices.append(flat[at : at + len(e.choices)])
        at += len(e.choices)
    return inputs, choices


def finetune_t5(
    model, tokenizer, examples: Sequence[Example], cfg: TrainConfig, seed: int, max_input: int, desc: str
) -> list[float]:
    """Fine-tune every weight of ``model`` to write each example's right choice."""
    inputs, choices = encode_examples(tokenizer, examples, max_input)
    targets = [c[e.label] for c, e in zip(choices, examples)]
    pad_id = tokenizer.pad_token_id
    model.train()

    def loss_fn(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows = idx.tolist()
        return _loss(
            model, pad([inputs[i] for i in rows], pad_id), pad([targets[i] for i in rows], pad_id), pad_id
        )

    stream_of = lambda generator: batches(len(examples), cfg.batch_size, cfg.steps, generator)  # noqa: E731
    losses = optimise(model.parameters(), cfg, seed, stream_of, loss_fn, desc=desc)
    model.eval()
    return losses
