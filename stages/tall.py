"""Stage tall@MTV: TALL masks and the reconstruction theta_0 + m_t * tau_MTL of each task.

tau_MTL is formed once, by any recipe of the registry with section mtv.<MTV>. Every task's mask
m_t = |tau_t| > lambda |tau_MTL - tau_t| is computed from it at every lambda of the grid in one
pass and packed 1 bit per weight. Per task, lambda is the grid value whose model is most accurate
on that task's validation split; the selected masks are kept for consensus merging and the
compressed store."""

import argparse

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.masks import MaskFile, write_masks, write_selection
from tallmerge.merging.methods import mtv_vectors
from tallmerge.merging.recipes import MTV_RECIPES
from tallmerge.params import Params
from tallmerge.results.evaluation import Benchmark, method_result, search_lambda


def main(mtv: str) -> None:
    params = Params.load()
    recipe = params.mtv(mtv)
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        base, tau_mtl = to_state(ckpts, mtv_vectors(ckpts, recipe))
        write_masks(layout.masks(mtv), ckpts, params.lambdas, recipe, tau_mtl)

    bench = Benchmark.from_params(params)
    with MaskFile(layout.masks(mtv)) as masks:

        def rebuilt(task: str, index: int):
            return apply(base, {k: v * masks.mask(task, index, k) for k, v in tau_mtl.items()})

        chosen, search, known = search_lambda(bench, rebuilt, masks.lambdas)
        write_selection(masks, chosen, layout.selected_masks(mtv))
        rows = bench.rows(lambda task: rebuilt(task, masks.lambdas[task].index(chosen[task])), known)
    write_json(
        method_result(f"tall-{mtv}", rows, {"lambda": chosen}, search=search),
        layout.method_metrics_path(f"tall-{mtv}"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mtv", choices=list(MTV_RECIPES))
    exit_on_error(main, parser.parse_args().mtv)
