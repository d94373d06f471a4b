"""Stage tall@MTV: TALL masks and the reconstruction theta_0 + m_t * tau_MTL of each task.

tau_MTL is formed once, by any recipe of the registry with section mtv.<MTV>. Every task's mask
m_t = |tau_t| > lambda |tau_MTL - tau_t| is computed from it at every lambda of the grid in one
pass and packed 1 bit per weight. Per task, lambda is the grid value whose model is most accurate
on that task's validation split; the selected masks are kept for consensus merging and the
compressed store. With --suite, on that suite of the text benchmark."""

import argparse

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.masks import MaskFile, write_masks, write_selection
from tallmerge.merging.methods import mtv_vectors
from tallmerge.merging.recipes import MTV_RECIPES
from tallmerge.results.selection import method_result, search_lambda
from tallmerge.setting import Setting, suite_option


def main(mtv: str, suite: str | None) -> None:
    setting = Setting.load(suite)
    recipe, paths = setting.params.mtv(mtv), setting.layout
    with setting.checkpoints() as ckpts:
        base, tau_mtl = to_state(ckpts, mtv_vectors(ckpts, recipe))
        write_masks(paths.masks(mtv), ckpts, setting.params.lambdas, recipe, tau_mtl)

    bench = setting.benchmark()
    with MaskFile(paths.masks(mtv)) as masks:

        def rebuilt(task: str, index: int):
            return apply(base, {k: v * masks.mask(task, index, k) for k, v in tau_mtl.items()})

        chosen, search, known = search_lambda(bench, rebuilt, masks.lambdas)
        write_selection(masks, chosen, paths.selected_masks(mtv))
        rows = bench.rows(lambda task: rebuilt(task, masks.lambdas[task].index(chosen[task])), known)
    write_json(
        method_result(f"tall-{mtv}", rows, {"lambda": chosen}, search=search),
        paths.method_metrics_path(f"tall-{mtv}"),
    )


if __name__ == "__main__":
    parser = suite_option(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("mtv", choices=list(MTV_RECIPES))
    args = parser.parse_args()
    exit_on_error(main, args.mtv, args.suite)
