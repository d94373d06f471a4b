"""Stage report: gather every method's result and the compressed store's measurements into the
metrics contract (metrics/accuracy.csv, metrics/summary.json; for the text benchmark's suites
metrics/text/accuracy.csv, metrics/text/summary.json), the plot data under plots/, and
reports/results.md (the vision half, then the NLP half)."""

import shutil

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import atomic_write, read_json, write_csv, write_json
from tallmerge.params import Params
from tallmerge.results import figures, text_report
from tallmerge.results.report import (
    accuracy_frame,
    alpha_curves,
    comparison,
    compression_summary,
    lambda_curves,
    markdown,
    overlap_shares,
    report_methods,
    storage,
    summary,
)


def main() -> None:
    params = Params.load()
    arch = params.arch
    methods = report_methods(params.merges, params.mtvs)
    results = [read_json(layout.method_metrics_path(method)) for method in methods]
    summary_ = summary(results)
    compression, schemes = read_json(layout.COMPRESSION), read_json(layout.SCHEMES)
    write_csv(accuracy_frame(results), layout.ACCURACY_CSV)
    write_json({**summary_, "compression": compression_summary(compression)}, layout.SUMMARY_JSON)

    write_csv(alpha_curves(results), layout.PLOTS / "alpha.csv")
    write_csv(overlap_shares(results), layout.PLOTS / "overlap.csv")
    write_csv(comparison(summary_), layout.PLOTS / "methods.csv")
    frontier = storage(summary_, compression, schemes)
    write_csv(frontier, layout.PLOTS / "storage.csv")
    shutil.rmtree(layout.PLOTS / "lambda", ignore_errors=True)  # tasks may have been removed
    by_task = lambda_curves(results)
    for task, curve in by_task.items():
        write_csv(curve, layout.PLOTS / "lambda" / f"{task}.csv")

    figures_dir = layout.RESULTS_MD.parent / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures.frontier(frontier, figures_dir / "frontier.png")
    figures.curves(
        alpha_curves(results),
        "alpha",
        figures_dir / "alpha.png",
        "Alpha, chosen on validation",
        "average normalized validation accuracy (%)",
    )
    figures.lambda_panels(by_task, figures_dir / "lambda.png")
    drawn = ("frontier", "alpha", "lambda")
    nlp = text_half(params)
    with atomic_write(layout.RESULTS_MD) as tmp:
        tmp.write_text(markdown(results, summary_, arch, compression, schemes, drawn) + "\n" + nlp)


def text_half(params: Params) -> str:
    """The text benchmark's metrics and plot data, per suite; returns its section of the report."""
    from tallmerge.text_params import TextParams

    text = TextParams(params.raw, params.source)
    suites, methods = text.suites, report_methods(params.merges, params.mtvs)
    reference = {m: read_json(layout.TEXT_RESULTS.method_metrics_path(m)) for m in ("zeroshot", "finetuned")}
    results, compression = {}, {}
    for suite, tasks in suites.items():
        paths = layout.text_suite(suite)
        results[suite] = [
            text_report.on_tasks(reference[m], tasks)
            if m in reference
            else read_json(paths.method_metrics_path(m))
            for m in methods
        ]
        compression[suite] = read_json(paths.compression)
    summary_ = text_report.text_summary(results, compression)
    write_csv(text_report.text_accuracy(results), layout.TEXT_ACCURACY_CSV)
    write_json(summary_, layout.TEXT_SUMMARY_JSON)
    write_csv(text_report.methods_frame(summary_), layout.PLOTS / "text" / "methods.csv")
    return text_report.markdown_section(summary_, suites, text.arch, compression)


if __name__ == "__main__":
    exit_on_error(main)
