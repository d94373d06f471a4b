"""Fine-tuning throughput and peak memory of a real-size CLIP image encoder, on this machine.

An open_clip ``ViT-B-32`` (random weights: speed does not depend on them) under a frozen
10-class head is fine-tuned with tallmerge's own loop (:func:`tallmerge.clip.train.finetune`: AdamW,
cross-entropy, the runtime's device, bf16 autocast on a GPU) on random 224 px images, and timed
against the same model's inference (``accuracy``) in the same process, the baseline. Reported:
images per second for both, their ratio, and the process's peak resident memory (CPU) or peak
allocated GPU memory, plus, on a GPU, the achieved fraction of a given bf16 peak
(``--peak-tflops``), counting 3x the forward FLOPs per trained image.

    python benchmarks/finetune_throughput.py                       # CPU: ViT-B-32, batch 16
    python benchmarks/finetune_throughput.py --batch 128 --steps 30 --peak-tflops 989   # one H100/H200
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from tallmerge.clip import runtime
from tallmerge.clip.batches import ImageSplit
from tallmerge.clip.heads import Classifier
from tallmerge.clip.models import create_clip, image_stats
from tallmerge.clip.train import accuracy, finetune
from tallmerge.params import TrainConfig


def vit_forward_flops(visual) -> float:
    """Multiply-adds x 2 of one image through a ViT: patch embedding, attention and MLP blocks."""
    width = visual.conv1.out_channels
    patch = visual.conv1.kernel_size[0]
    tokens = visual.positional_embedding.shape[0]
    layers = len(visual.transformer.resblocks)
    mlp = visual.transformer.resblocks[0].mlp.c_fc.out_features
    embed = (tokens - 1) * 3 * patch * patch * width
    per_block = tokens * (4 * width * width + 2 * width * mlp) + 2 * tokens * tokens * width
    return 2.0 * (embed + layers * per_block)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (after 2 warm-up steps)")
    parser.add_argument(
        "--peak-tflops", type=float, help="the accelerator's dense bf16 peak, for the utilisation"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    rt = runtime.current()
    model = create_clip(args.model, seed=0)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    head = torch.nn.functional.normalize(torch.randn(10, model.visual.output_dim), dim=-1)
    classifier = Classifier(model.visual, head)
    n = args.batch * (args.steps + 2)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    split = ImageSplit(images, torch.randint(0, 10, (n,)), *image_stats(model))

    def timed_finetune(steps: int) -> float:
        cfg = TrainConfig(steps=steps, batch_size=args.batch, lr=1e-5, weight_decay=0.1, warmup=1)
        if rt.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        finetune(classifier, split, cfg, seed=0, desc="benchmark")
        if rt.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed_finetune(2)  # warm-up: allocator, kernels, autotuning
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # finetune moves the classifier to the device and back each call; time the steps net of that
    train_s = timed_finetune(args.steps + 2) - timed_finetune(2)
    train_ips = args.batch * args.steps / train_s

    classifier.to(rt.device)
    start = time.perf_counter()
    with rt.autocast():
        accuracy(classifier, split, batch_size=args.batch)
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    eval_ips = n / (time.perf_counter() - start)
    classifier.to("cpu")

    result = {
        "model": args.model,
        "image_size": size,
        "batch": args.batch,
        "device": str(rt.device),
        "threads": torch.get_num_threads(),
        "train_images_per_s": round(train_ips, 2),
        "eval_images_per_s": round(eval_ips, 2),
        "train_vs_eval": round(train_ips / eval_ips, 3),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
    }
    if rt.device.type == "cuda":
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
        result["gpu"] = torch.cuda.get_device_name()
    if args.peak_tflops:
        achieved = 3 * vit_forward_flops(model.visual) * train_ips / 1e12
        result["train_tflops"] = round(achieved, 2)
        result["fraction_of_peak"] = round(achieved / args.peak_tflops, 4)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
