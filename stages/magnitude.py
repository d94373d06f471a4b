"""Stage magnitude: the two magnitude baselines. Per task, the top-k% magnitudes of its task vector
form its mask m_t; magnitude masking applies it to sum_t tau_t (theta_0 + m_t * sum_t tau_t),
magnitude pruning to the task's own vector (theta_0 + m_t * tau_t). No selection. With --suite,
on that suite of the text benchmark."""

import argparse

from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.methods import magnitude_vectors, pruned_vectors
from tallmerge.results.selection import method_result
from tallmerge.setting import Setting, suite_option


def main(suite: str | None) -> None:
    setting = Setting.load(suite)
    topk = setting.params.magnitude_topk
    row = {task: i for i, task in enumerate(setting.tasks)}
    bench = setting.benchmark()
    for method, vectors_of in (
        ("magnitude-masking", magnitude_vectors),
        ("magnitude-pruning", pruned_vectors),
    ):
        with setting.checkpoints() as ckpts:
            base, vectors = to_state(ckpts, vectors_of(ckpts, topk))
        rows = bench.rows(
            lambda task, base=base, vectors=vectors: apply(
                base, {k: v[row[task]] for k, v in vectors.items()}
            )
        )
        write_json(method_result(method, rows, {"topk": topk}), setting.layout.method_metrics_path(method))


if __name__ == "__main__":
    exit_on_error(main, suite_option(argparse.ArgumentParser(description=__doc__)).parse_args().suite)
