"""Fine-tuning under DDP: two gloo processes on the CPU follow the one-process trajectory
(each rank takes half of every batch; the averaged gradient is the whole batch's)."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tallmerge.clip import runtime
from tallmerge.clip.batches import ImageSplit
from tallmerge.clip.heads import Classifier
from tallmerge.clip.models import create_clip, image_stats
from tallmerge.clip.train import finetune
from tallmerge.errors import TallmergeError
from tallmerge.params import TrainConfig

CFG = TrainConfig(steps=6, batch_size=16, lr=1e-3, weight_decay=0.1, warmup=1)


def setup():
    """A deterministic tiny classifier and task."""
    model = create_clip("pocket-vit", seed=1)
    head = torch.nn.functional.normalize(
        torch.randn(4, model.visual.output_dim, generator=torch.Generator().manual_seed(2)), dim=-1
    )
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (48, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (48,), generator=g)
    return Classifier(model.visual, head), ImageSplit(images, labels, *image_stats(model))


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    with runtime.launched() as rt:
        assert (rt.rank, rt.world) == (rank, world)
        classifier, split = setup()
        losses = finetune(classifier, split, CFG, seed=0)
        if rt.main:
            torch.save({"losses": torch.tensor(losses), "state": classifier.encoder.state_dict()}, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_follow_the_one_process_trajectory(tmp_path):
    classifier, split = setup()
    start = torch.cat([v.flatten() for v in classifier.encoder.state_dict().values()])
    single = torch.tensor(finetune(classifier, split, CFG, seed=0))
    out = tmp_path / "ddp.pt"
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    assert single[-1] < single[0]  # it learns
    assert torch.allclose(ddp["losses"], single, rtol=1e-4, atol=1e-5), (ddp["losses"], single)
    # The same update, up to float summation order. (Not entry by entry: AdamW turns the
    # rounding noise of gradients that are zero in exact arithmetic, such as attention's key
    # bias, into full-size steps of either sign.)
    one = torch.cat([v.flatten() for v in classifier.encoder.state_dict().values()]) - start
    two = torch.cat([v.flatten() for v in ddp["state"].values()]) - start
    assert (two - one).norm() < 1e-3 * one.norm()


def test_one_process_is_unchanged_by_the_runtime():
    """Without torchrun, on the CPU: the same run twice gives the same bytes."""
    a, split = setup()
    b, _ = setup()
    assert finetune(a, split, CFG, seed=0) == finetune(b, split, CFG, seed=0)
    assert all(torch.equal(v, b.encoder.state_dict()[k]) for k, v in a.encoder.state_dict().items())
    assert next(a.parameters()).device.type == "cpu"


def test_batch_must_split_evenly(monkeypatch):
    monkeypatch.setattr(runtime, "current", lambda: runtime.Runtime(torch.device("cpu"), 0, 3))
    classifier, split = setup()
    with pytest.raises(TallmergeError, match="batch size 16 does not split evenly over 3 processes"):
        finetune(classifier, split, CFG, seed=0)
