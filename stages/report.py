"""Stage report: gather every method's result and the compressed store's measurements into the
metrics contract (metrics/accuracy.csv, metrics/summary.json), the plot data under plots/, and
reports/results.md."""

import shutil

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import atomic_write, read_json, write_csv, write_json
from tallmerge.params import Params
from tallmerge.results.report import (
    METHODS,
    accuracy_frame,
    alpha_curves,
    comparison,
    compression_summary,
    lambda_curves,
    markdown,
    overlap_shares,
    storage,
    summary,
)


def main() -> None:
    arch = Params.load().arch
    results = [read_json(layout.method_metrics_path(method)) for method in METHODS]
    summary_ = summary(results)
    compression = read_json(layout.COMPRESSION)
    write_csv(accuracy_frame(results), layout.ACCURACY_CSV)
    write_json({**summary_, "compression": compression_summary(compression)}, layout.SUMMARY_JSON)

    write_csv(alpha_curves(results), layout.PLOTS / "alpha.csv")
    write_csv(overlap_shares(results), layout.PLOTS / "overlap.csv")
    write_csv(comparison(summary_), layout.PLOTS / "methods.csv")
    write_csv(storage(summary_, compression), layout.PLOTS / "storage.csv")
    shutil.rmtree(layout.PLOTS / "lambda", ignore_errors=True)  # tasks may have been removed
    for task, curve in lambda_curves(results).items():
        write_csv(curve, layout.PLOTS / "lambda" / f"{task}.csv")
    with atomic_write(layout.RESULTS_MD) as tmp:
        tmp.write_text(markdown(results, summary_, arch, compression))


if __name__ == "__main__":
    exit_on_error(main)
