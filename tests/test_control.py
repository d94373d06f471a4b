"""The control experiment's restriction (study/control.py): each task trains only its own
disjoint weights; everything else stays at theta_0 exactly, AdamW's weight decay included."""

import sys
from pathlib import Path

import pytest
import torch

from helpers import small_task
from tallmerge.clip.heads import Classifier, zeroshot_head
from tallmerge.clip.models import create_clip, tokenizer
from tallmerge.clip.train import finetune
from tallmerge.params import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "study"))
import control  # noqa: E402


def test_supports_are_disjoint_seeded_and_of_the_asked_fraction():
    encoder = create_clip("pocket-vit", seed=0).visual
    masks = control.supports(encoder, 4, 0.25, seed=1)
    again = control.supports(encoder, 4, 0.25, seed=1)
    total = sum(p.numel() for p in encoder.parameters())
    for name in masks[0]:
        stacked = torch.stack([m[name] for m in masks]).int()
        assert stacked.sum(0).max() <= 1  # disjoint
        assert all(torch.equal(m[name], a[name]) for m, a in zip(masks, again))
    assert all(abs(sum(int(m.sum()) for m in task.values()) / total - 0.25) < 0.01 for task in masks)
    with pytest.raises(SystemExit, match="fraction"):
        control.supports(encoder, 4, 0.3, seed=1)


def test_restricted_finetuning_moves_only_its_own_weights():
    task, train, _ = small_task(n=128)
    clip = create_clip("pocket-vit", seed=0)
    theta0 = {k: v.clone() for k, v in clip.visual.state_dict().items()}
    support = control.supports(clip.visual, 2, 0.5, seed=0)[1]
    head = zeroshot_head(clip, tokenizer("pocket-vit"), task.classnames, task.templates)
    control.restrict(clip.visual, support)
    finetune(
        Classifier(clip.visual, head),
        train,
        TrainConfig(steps=5, batch_size=32, lr=1e-3, weight_decay=0.1, warmup=1),
        seed=0,
    )
    control.release(clip.visual)
    state = clip.visual.state_dict()
    assert list(state) == list(theta0)
    for key, value in state.items():
        assert torch.equal(value[~support[key]], theta0[key][~support[key]]), key
    assert sum(int((state[k] != theta0[k]).sum()) for k in state) > 0.3 * sum(
        int(m.sum()) for m in support.values()
    )
