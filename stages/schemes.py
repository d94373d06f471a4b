"""Stage schemes: the per-task rivals of the TALL store, on the same checkpoints and with the
same accounting (bytes on disk, every task rebuilt and evaluated), at each vector dtype of
`compress.vector_dtype`:

- EMR-Merging: one unified vector tau_uni, each task's mask of the weights where tau_t agrees
  with it, and one rescaler per task; task t = theta_0 + s_t * m_t * tau_uni (no validation data);
- TSV-C: each task's own task vector at rank r / T on every matrix (whole elsewhere), at the
  floating-point dtypes only (its factors are not quantized).

The stores are measured and discarded; `tallmerge compress --scheme emr|tsv-c` writes one. With
--suite, on that suite of the text benchmark."""

import argparse
from pathlib import Path

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import temporary_dir, write_json
from tallmerge.results.selection import SPLITS, reference_top1, store_result
from tallmerge.setting import Setting, suite_option
from tallmerge.store.build import compress, emr_mask_source
from tallmerge.store.codec import FLOAT_FORMATS
from tallmerge.store.lowrank import compress_low_rank, open_store


def main(suite: str | None) -> None:
    setting = Setting.load(suite)
    dtypes, paths = setting.params.compress.vector_dtype, setting.layout
    bench = setting.benchmark()
    reference = {split: reference_top1(setting.reference, split) for split in SPLITS}
    paths.models.mkdir(parents=True, exist_ok=True)
    stores = {}
    with (
        setting.checkpoints() as ckpts,
        temporary_dir(paths.models / "schemes") as scratch,
    ):
        for dtype in dtypes:
            out = Path(scratch) / f"emr-{dtype}"
            compress(out, ckpts, emr_mask_source(ckpts), dtype)
            stores[f"emr {dtype}"] = store_result(open_store(out), bench, reference)
            if dtype not in FLOAT_FORMATS:
                continue
            out = Path(scratch) / f"tsv-c-{dtype}"
            compress_low_rank(out, ckpts, dtype)
            stores[f"tsv-c {dtype}"] = store_result(open_store(out), bench, reference)
    write_json({"stores": stores}, paths.schemes)


if __name__ == "__main__":
    exit_on_error(main, suite_option(argparse.ArgumentParser(description=__doc__)).parse_args().suite)
