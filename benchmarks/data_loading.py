"""How fast the real-dataset path feeds a model: JPEG decoding plus the model's own open_clip
transform, by DataLoader workers, against the same model's inference in the same process.

A folder of JPEG photos the size of typical benchmark images (500 x 375, smooth noise so that
they compress like photos) is read through :class:`tallmerge.clip.batches.DatasetSplit` with the
``ViT-B-32`` evaluation transform (resize to 224, centre crop, normalize), with 0 and with
``--workers`` worker processes; the baseline is ``ViT-B-32`` inference on ready tensors. The
ratio says how many loading processes keep one model busy: on a GPU, evaluation runs at the
loaders' pace unless ``data.workers`` is at least inference rate / per-worker loading rate.

    python benchmarks/data_loading.py                     # 2 workers, 256 images
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tallmerge.clip.batches import DatasetSplit
from tallmerge.clip.models import create_clip, image_transform
from tallmerge.tasks.samples import FileSamples


def write_photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        paths.append(folder / f"{i:05d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def images_per_s(split: DatasetSplit, batch: int) -> float:
    start = time.perf_counter()
    count = sum(len(x) for x, _ in split.in_order(batch))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", default="benchmarks/results/data_loading_cpu.json")
    args = parser.parse_args()

    model = create_clip("ViT-B-32", seed=0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photos(Path(tmp), args.images)
        samples = FileSamples(paths, np.zeros(len(paths), dtype=np.int64), ["photo"])
        index = torch.arange(len(paths))
        loading = {}
        for workers in sorted({0, args.workers}):
            split = DatasetSplit(
                samples, index, torch.zeros(len(paths), dtype=torch.int64), image_transform(model), workers
            )
            images_per_s(split, args.batch)  # warm the page cache and the workers' imports
            loading[workers] = images_per_s(split, args.batch)

    x = torch.randn(args.batch, 3, 224, 224)
    with torch.no_grad():
        model.visual(x)
        start, steps = time.perf_counter(), max(1, args.images // args.batch // 2)
        for _ in range(steps):
            model.visual(x)
        inference = steps * args.batch / (time.perf_counter() - start)

    result = {
        "model": "ViT-B-32",
        "image": "500x375 JPEG",
        "threads": torch.get_num_threads(),
        "loading_images_per_s": {str(w): round(v, 1) for w, v in loading.items()},
        "inference_images_per_s": round(inference, 1),
        "loading_per_process_over_inference": round(loading[0] / inference, 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
