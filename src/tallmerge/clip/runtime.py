"""Where training runs: the device, mixed precision, and the processes of a ``torchrun`` launch.

- The device is chosen automatically: ``cuda`` when present (each process its ``LOCAL_RANK``'s
  GPU), else the CPU. On a GPU, forward passes run under bf16 autocast; on the CPU they stay in
  float32, so CPU runs remain byte-for-byte reproducible.
- Launched by ``torchrun --nproc-per-node N`` (``WORLD_SIZE`` > 1), a stage joins the process
  group (NCCL on GPUs, gloo on CPUs) and trains with DistributedDataParallel: every rank draws
  the same global batch from the same seeded generator and takes its own equal share of it, so
  the averaged gradient is the one-process gradient of the whole batch. Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes outputs (rank 0)."""
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on a GPU; a no-op on the CPU."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")


def current() -> Runtime:
    """This process's device, rank and world size."""
    rank, world = (
        (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    )
    if torch.cuda.is_available():
        return Runtime(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))), rank, world)
    return Runtime(torch.device("cpu"), rank, world)


@contextlib.contextmanager
def launched() -> Iterator[Runtime]:
    """Join ``torchrun``'s process group when there is one (``WORLD_SIZE`` > 1), leave it at the end."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield current()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()
