"""Stage merge@METHOD (average, task-arithmetic, ties): one merged model for all tasks,
theta_0 + alpha * vector, with alpha chosen on validation by average normalized accuracy
(weight averaging: alpha = 1/T)."""

import argparse

from tallmerge import layout
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.errors import exit_on_error
from tallmerge.results.evaluation import Benchmark, reference_top1, result, search_alpha
from tallmerge.formats.files import write_json
from tallmerge.merging.methods import plan, vectors
from tallmerge.clip.models import save_visual
from tallmerge.params import Params


def main(method: str) -> None:
    params = Params.load()
    options = params.merge_options(method)
    merge = plan(method, topk=options.get("topk"), ties_agg=options.get("agg"))
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        base, vector = to_state(ckpts, vectors(merge, ckpts))

    bench = Benchmark.from_params(params)
    if method == "average":
        alpha, search, known = merge.alpha_for(len(params.tasks)), [], {}
    else:
        reference = reference_top1(layout.result("finetuned"))
        alpha, search, known = search_alpha(bench, lambda a: apply(base, vector, a), options["alpha"], reference)
    merged = apply(base, vector, alpha)
    save_visual(merged, params.arch, layout.merged(method), method=method, alpha=alpha)
    rows = bench.rows(lambda task: merged, known)
    write_json(result(method, rows, {"alpha": alpha}, search=search), layout.result(method))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("method", choices=["average", "task-arithmetic", "ties"])
    exit_on_error(main, parser.parse_args().method)
