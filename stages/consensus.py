"""Stage consensus@MTV: Consensus TA / TIES / ... (any recipe of tau_MTL). Keep tau_MTL only where at least k tasks' selected
TALL masks are on (dropping catastrophic and selfish weights), then theta_0 + alpha * that, with
alpha chosen on validation; also the share of weights used by 0, 1, ..., T tasks. With --suite,
on that suite of the text benchmark."""

import argparse

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.masks import MaskFile, usage_counts
from tallmerge.merging.methods import method_vectors, plan
from tallmerge.merging.recipes import MTV_RECIPES
from tallmerge.results.selection import method_result, reference_top1, search_alpha
from tallmerge.setting import Setting, suite_option


def main(mtv: str, suite: str | None) -> None:
    setting = Setting.load(suite)
    options, paths = setting.params.consensus, setting.layout
    method, masks_path = f"consensus-{mtv}", paths.selected_masks(mtv)
    with MaskFile(masks_path) as masks:
        used_by = usage_counts(masks)
        recipe_options = masks.mtv.options
    merge_plan = plan(method, masks=masks_path, k=options["k"], **recipe_options)
    with setting.checkpoints() as ckpts:
        base, vector = to_state(ckpts, method_vectors(merge_plan, ckpts))

    bench = setting.benchmark()
    reference = reference_top1(setting.reference)
    alpha, search, known = search_alpha(bench, lambda a: apply(base, vector, a), options["alpha"], reference)
    merged = apply(base, vector, alpha)
    setting.save(merged, paths.merged(method), method=method, alpha=alpha, k=options["k"])
    rows = bench.rows(lambda task: merged, known)
    write_json(
        method_result(method, rows, {"alpha": alpha, "k": options["k"]}, search=search, overlap=used_by),
        paths.method_metrics_path(method),
    )


if __name__ == "__main__":
    parser = suite_option(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("mtv", choices=list(MTV_RECIPES))
    args = parser.parse_args()
    exit_on_error(main, args.mtv, args.suite)
