import torch

from helpers import small_task
from tallmerge.clip.heads import Classifier, zeroshot_head
from tallmerge.clip.models import create_clip, image_stats, tokenizer
from tallmerge.clip.train import accuracy, finetune, pretrain_clip
from tallmerge.params import PretrainConfig, TrainConfig
from tallmerge.tasks.web import caption_tokens, web_mix
from tallmerge.training import batches, lr_factor


def test_lr_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == 0.1 and factors[9] == 1.0
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] < 0.01


def test_batches_cover_each_epoch_without_repeats():
    stream = list(batches(10, 4, 5, torch.Generator().manual_seed(0)))
    flat = torch.cat(stream)
    assert len(stream) == 5 and all(len(b) == 4 for b in stream)
    assert sorted(flat[:10].tolist()) == list(range(10))


def test_finetuning_moves_accuracy_up_and_is_deterministic():
    task, train, test = small_task()
    cfg = TrainConfig(steps=40, batch_size=64, lr=1e-3, weight_decay=0.1, warmup=4)
    results = []
    for _ in range(2):
        clip = create_clip("pocket-vit", seed=0)
        head = zeroshot_head(clip, tokenizer("pocket-vit"), task.classnames, task.templates)
        classifier = Classifier(clip.visual, head)
        before = accuracy(classifier, test)
        head_before = classifier.head.clone()
        losses = finetune(classifier, train, cfg, seed=0)
        results.append((before, accuracy(classifier, test), losses, clip.visual.state_dict()))
        assert torch.equal(classifier.head, head_before)  # the head stays frozen
    (before, after, losses, state), (_, after2, losses2, state2) = results
    assert after >= before + 30, (before, after)
    assert losses[-1] < losses[0]
    assert losses == losses2 and after == after2
    assert all(torch.equal(state[k], state2[k]) for k in state)


def test_contrastive_pretraining_lowers_the_loss():
    clip = create_clip("pocket-vit", seed=0)
    images, concepts, concept_list = web_mix(["colors", "shapes"], 512, seed=0, variety=0.25)
    captions, counts = caption_tokens(concept_list, tokenizer("pocket-vit"))
    assert captions.shape[0] == len(concept_list) == 16
    cfg = PretrainConfig(
        steps=30, batch_size=64, lr=1e-3, weight_decay=0.1, warmup=3, images=512, web_variety=0.25
    )
    losses = pretrain_clip(clip, images, concepts, captions, counts, *image_stats(clip), cfg, seed=0)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_gradient_clipping_bounds_each_step():
    # With Adam, a gradient clipped to a norm far below eps leaves only weight decay to move the
    # weights; unclipped, the same steps move them much further.
    task, train, _ = small_task()
    moved = {}
    for clip_grad in (None, 1e-12):
        cfg = TrainConfig(steps=3, batch_size=32, lr=1e-3, weight_decay=0.0, warmup=1, clip_grad=clip_grad)
        clip = create_clip("pocket-vit", seed=0)
        head = zeroshot_head(clip, tokenizer("pocket-vit"), task.classnames, task.templates)
        before = {k: v.clone() for k, v in clip.visual.state_dict().items()}
        finetune(Classifier(clip.visual, head), train, cfg, seed=0)
        moved[clip_grad] = max(
            (v - before[k]).abs().max().item() for k, v in clip.visual.state_dict().items()
        )
    assert moved[1e-12] < 1e-5 < 1e-4 < moved[None], moved
