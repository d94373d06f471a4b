"""Stage evaluate: the two reference points, zero-shot (theta_0) and each task's fine-tuned
model (theta_t), on every task's val and test splits."""

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.params import Params
from tallmerge.results.evaluation import Benchmark
from tallmerge.results.selection import method_result


def main() -> None:
    params = Params.load()
    bench = Benchmark.from_params(params)
    zeroshot = bench.load(layout.PRETRAINED_VISUAL)
    write_json(
        method_result("zeroshot", bench.rows(lambda task: zeroshot)), layout.method_metrics_path("zeroshot")
    )
    finetuned = bench.rows(lambda task: bench.load(layout.finetuned(task)))
    write_json(method_result("finetuned", finetuned), layout.method_metrics_path("finetuned"))


if __name__ == "__main__":
    exit_on_error(main)
