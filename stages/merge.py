"""Stage merge@METHOD (average, task-arithmetic, ties, tsv-m, iso-c, iso-cts): one merged model
for all tasks, theta_0 + alpha * vector, with alpha chosen on validation by average normalized
accuracy (weight averaging: alpha = 1/T)."""

import argparse

from tallmerge import layout
from tallmerge.clip.models import save_visual
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.methods import method_vectors, plan
from tallmerge.merging.recipes import METHODS
from tallmerge.params import Params
from tallmerge.results.evaluation import Benchmark, method_result, reference_top1, search_alpha


def main(method: str) -> None:
    params = Params.load()
    options = params.merge_options(method)
    merge_plan = plan(method, **{name: value for name, value in options.items() if name != "alpha"})
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        base, vector = to_state(ckpts, method_vectors(merge_plan, ckpts))

    bench = Benchmark.from_params(params)
    if merge_plan.method.fixed_alpha:
        alpha, search, known = merge_plan.alpha_for(len(params.tasks)), [], {}
    else:
        reference = reference_top1(layout.method_metrics_path("finetuned"))
        alpha, search, known = search_alpha(
            bench, lambda a: apply(base, vector, a), options["alpha"], reference
        )
    merged = apply(base, vector, alpha)
    save_visual(merged, params.arch, layout.merged(method), method=method, alpha=alpha)
    rows = bench.rows(lambda task: merged, known)
    write_json(
        method_result(method, rows, {"alpha": alpha}, search=search), layout.method_metrics_path(method)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("method", choices=[m.name for m in METHODS.values() if not m.consensus])
    exit_on_error(main, parser.parse_args().method)
