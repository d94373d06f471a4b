"""Stage magnitude: the magnitude-masking baseline. Per task, the top-k% magnitudes of its task
vector form its mask, applied to sum_t tau_t: theta_0 + m_t * sum_t tau_t (no selection)."""

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.methods import magnitude_vectors
from tallmerge.params import Params
from tallmerge.results.evaluation import Benchmark, method_result


def main() -> None:
    params = Params.load()
    topk = params.magnitude_topk
    with Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts:
        base, vectors = to_state(ckpts, magnitude_vectors(ckpts, topk))
    row = {task: i for i, task in enumerate(params.tasks)}
    bench = Benchmark.from_params(params)
    rows = bench.rows(lambda task: apply(base, {k: v[row[task]] for k, v in vectors.items()}))
    write_json(
        method_result("magnitude-masking", rows, {"topk": topk}),
        layout.method_metrics_path("magnitude-masking"),
    )


if __name__ == "__main__":
    exit_on_error(main)
