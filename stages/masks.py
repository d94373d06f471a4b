"""Stage masks@MTV: every task's TALL mask m_t = |tau_t| > lambda |tau_MTL - tau_t| at every
lambda of the grid, in one pass, packed 1 bit per weight; tau_MTL is formed by any recipe of the
registry (ta: the sum of task vectors, ties, tsv-m, iso-c, iso-cts), with section mtv.<MTV>."""

import argparse

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import write_masks
from tallmerge.merging.recipes import MTV_RECIPES
from tallmerge.params import Params


def main(mtv: str) -> None:
    params = Params.load()
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        write_masks(layout.masks(mtv), ckpts, params.lambdas, params.mtv(mtv))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mtv", choices=list(MTV_RECIPES))
    exit_on_error(main, parser.parse_args().mtv)
