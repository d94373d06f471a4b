"""Rank classification: a text-to-text model answers a multiple-choice example by scoring each
answer choice as its target and picking the best (as T0 and TIES-Merging evaluate).

A choice's score is the log-likelihood of its tokens (its end token included) given the input.
With ``length_norm`` (the pipeline's default) it is the mean per token rather than the sum: a sum
penalises long choices for their length alone, which biases tasks whose choices differ in length
(story endings, passages' answers); the mean compares how well each choice fits. Ties go to the
first choice. Each input is encoded once and its encoder states shared by all its choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.modeling_outputs import BaseModelOutput

from tallmerge.text.train import pad


@torch.no_grad()
def choice_scores(
    model,
    inputs: Sequence[Sequence[int]],
    choices: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    length_norm: bool,
    batch_size: int,
) -> list[torch.Tensor]:
    """Per example, one score per choice (``inputs[i]``'s ids, ``choices[i]`` its choices' ids)."""
    model.eval()
    scores = []
    at = 0
    while at < len(inputs):
        # examples in this batch: as many as keep the (example, choice) pairs within batch_size
        stop, pairs = at, 0
        while stop < len(inputs) and (stop == at or pairs + len(choices[stop]) <= batch_size):
            pairs += len(choices[stop])
            stop += 1
        x = pad(inputs[at:stop], pad_id).to(model.device)
        mask = (x != pad_id).long()
        states = model.encoder(input_ids=x, attention_mask=mask).last_hidden_state
        counts = torch.tensor([len(c) for c in choices[at:stop]], device=model.device)
        targets = pad([c for cs in choices[at:stop] for c in cs], pad_id).to(model.device)
        labels = targets.masked_fill(targets == pad_id, -100)
        out = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=states.repeat_interleave(counts, dim=0)),
            attention_mask=mask.repeat_interleave(counts, dim=0),
            labels=labels,
        )
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        token = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * (labels != -100)
        score = token.sum(dim=1)
        if length_norm:
            score = score / (labels != -100).sum(dim=1)
        scores += list(torch.split(score.cpu(), counts.tolist()))
        at = stop
    return scores


def accuracy(scores: Sequence[torch.Tensor], labels: Sequence[int]) -> float:
    """Percent of examples whose best-scored choice (the first of equals) is the right one."""
    right = sum(int(torch.argmax(s).item() == y) for s, y in zip(scores, labels))
    return 100.0 * right / len(labels)
