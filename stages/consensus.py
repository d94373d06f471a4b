"""Stage consensus@MTV: Consensus TA / TIES. Keep tau_MTL only where at least k tasks' selected
TALL masks are on (dropping catastrophic and selfish weights), then theta_0 + alpha * that, with
alpha chosen on validation; also the share of weights used by 0, 1, ..., T tasks."""

import argparse

from tallmerge import layout
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.errors import exit_on_error
from tallmerge.results.evaluation import Benchmark, reference_top1, result, search_alpha
from tallmerge.formats.files import write_json
from tallmerge.merging.masks import MaskFile, overlap
from tallmerge.merging.methods import plan, vectors
from tallmerge.clip.models import save_visual
from tallmerge.params import Params


def main(mtv: str) -> None:
    params = Params.load()
    options = params.merge_options("consensus")
    method, masks_path = f"consensus-{mtv}", layout.selected_masks(mtv)
    with MaskFile(masks_path) as masks:
        used_by = overlap(masks)
        ties = {"topk": masks.mtv.topk, "ties_agg": masks.mtv.agg} if mtv == "ties" else {}
    merge = plan(method, masks=masks_path, k=options["k"], **ties)
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        base, vector = to_state(ckpts, vectors(merge, ckpts))

    bench = Benchmark.from_params(params)
    reference = reference_top1(layout.result("finetuned"))
    alpha, search, known = search_alpha(bench, lambda a: apply(base, vector, a), options["alpha"], reference)
    merged = apply(base, vector, alpha)
    save_visual(merged, params.arch, layout.merged(method), method=method, alpha=alpha, k=options["k"])
    rows = bench.rows(lambda task: merged, known)
    write_json(result(method, rows, {"alpha": alpha, "k": options["k"]}, search=search, overlap=used_by),
               layout.result(method))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mtv", choices=["ta", "ties"])
    exit_on_error(main, parser.parse_args().mtv)
