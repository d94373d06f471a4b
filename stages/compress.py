"""Stage compress: the compressed multi-task store. The pre-trained model, one merged vector
tau_MTL and each task's TALL mask at its lambda selected on validation (entropy-coded) replace
the T fine-tuned models; task t is rebuilt as theta_0 + m_t * tau_MTL.

A store is built at each vector dtype in params; every task is rebuilt from it and evaluated.
The smallest store whose average normalized validation accuracy is within `compress.tolerance`
points of the best is kept (models/store). For comparison the magnitude-masking baseline is
stored the same way. Sizes are bytes on disk; the projection to the paper's models applies our
measured bits per weight to its accounting (the full fp32 zero-shot model + vector + 20 masks),
and the overhead beyond that fp32 model (vector + 20 masks) on its own. With --suite, on that
suite of the text benchmark, projected to T5-large-LM-adapt with the suite's number of tasks."""

import argparse
import shutil
from pathlib import Path

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import temporary_dir, write_json
from tallmerge.merging.masks import MaskFile
from tallmerge.merging.methods import mtv_vectors
from tallmerge.results.selection import SPLITS, reference_top1, store_result
from tallmerge.setting import Setting, suite_option
from tallmerge.store.accounting import projections
from tallmerge.store.build import compress, magnitude_mask_source, tall_mask_source
from tallmerge.store.reader import Store


def main(suite: str | None) -> None:
    setting = Setting.load(suite)
    config, paths = setting.params.compress, setting.layout
    bench = setting.benchmark()
    reference = {split: reference_top1(setting.reference, split) for split in SPLITS}
    paths.models.mkdir(parents=True, exist_ok=True)
    with (
        setting.checkpoints() as ckpts,
        MaskFile(paths.selected_masks(config.mtv)) as masks,
        temporary_dir(paths.models / "compress") as scratch,
    ):
        tau_mtl = {key: vector for key, _, vector in mtv_vectors(ckpts, masks.mtv)}  # formed once
        stores = {}
        for dtype in config.vector_dtype:
            compress(Path(scratch) / dtype, ckpts, tall_mask_source(masks, ckpts), dtype, tau_mtl)
            stores[dtype] = store_result(Store(Path(scratch) / dtype), bench, reference)
        best = max(s["avg_normalized_val"] for s in stores.values())
        eligible = [d for d, s in stores.items() if s["avg_normalized_val"] >= best - config.tolerance]
        kept = min(eligible, key=lambda d: stores[d]["bytes"]["total"])
        shutil.rmtree(paths.store, ignore_errors=True)
        shutil.move(Path(scratch) / kept, paths.store)

        topk = setting.params.magnitude_topk
        compress(Path(scratch) / "magnitude", ckpts, magnitude_mask_source(ckpts, topk), kept)
        magnitude = store_result(Store(Path(scratch) / "magnitude"), bench, reference)

    chosen = stores[kept]
    bits = chosen["bits_per_weight"]
    write_json(
        {
            "store": str(paths.store),
            "mtv": config.mtv,
            "vector_dtype": kept,
            "bytes": {"finetuned": chosen["finetuned_bytes"], **chosen["bytes"]},
            "bits_per_weight": bits,
            **{
                k: chosen[k]
                for k in ("avg_top1_val", "avg_top1_test", "avg_normalized_val", "avg_normalized_test")
            },
            **projections(setting.projections, bits["vector"], bits["mask"]),
            "accuracy": chosen["accuracy"],
            "stores": {
                **{f"tall-{config.mtv} {d}": s for d, s in stores.items()},
                f"magnitude-masking {kept}": magnitude,
            },
            "magnitude_topk": topk,
        },
        paths.compression,
    )


if __name__ == "__main__":
    exit_on_error(main, suite_option(argparse.ArgumentParser(description=__doc__)).parse_args().suite)
