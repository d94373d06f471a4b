"""Stage merge@METHOD (average, task-arithmetic, ties, tsv-m, iso-c, iso-cts): one merged model
for all tasks, theta_0 + alpha * vector, with alpha chosen on validation by average normalized
accuracy (weight averaging: alpha = 1/T). With --suite, on that suite of the text benchmark."""

import argparse

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.methods import method_vectors, plan
from tallmerge.merging.recipes import METHODS
from tallmerge.results.selection import method_result, reference_top1, search_alpha
from tallmerge.setting import Setting, suite_option


def main(method: str, suite: str | None) -> None:
    setting = Setting.load(suite)
    options = setting.params.merge_options(method)
    merge_plan = plan(method, **{name: value for name, value in options.items() if name != "alpha"})
    with setting.checkpoints() as ckpts:
        base, vector = to_state(ckpts, method_vectors(merge_plan, ckpts))

    bench = setting.benchmark()
    if merge_plan.method.fixed_alpha:
        alpha, search, known = merge_plan.alpha_for(len(setting.tasks)), [], {}
    else:
        reference = reference_top1(setting.reference)
        alpha, search, known = search_alpha(
            bench, lambda a: apply(base, vector, a), options["alpha"], reference
        )
    merged = apply(base, vector, alpha)
    setting.save(merged, setting.layout.merged(method), method=method, alpha=alpha)
    rows = bench.rows(lambda task: merged, known)
    write_json(
        method_result(method, rows, {"alpha": alpha}, search=search),
        setting.layout.method_metrics_path(method),
    )


if __name__ == "__main__":
    parser = suite_option(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("method", choices=[m.name for m in METHODS.values() if not m.consensus])
    args = parser.parse_args()
    exit_on_error(main, args.method, args.suite)
