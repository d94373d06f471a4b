"""Stage text-evaluate: the two reference points of the text benchmark, zero-shot (the pre-trained
T5 with the same prompts) and each task's fine-tuned model, on every text task's val and test
splits, by rank classification. The suites' averages are taken from these per-task rows."""

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import write_json
from tallmerge.results.selection import method_result
from tallmerge.results.text_evaluation import TextBenchmark
from tallmerge.text_params import TextParams


def main() -> None:
    text = TextParams.load()
    bench = TextBenchmark.from_params(text)
    results = layout.TEXT_RESULTS
    zeroshot = bench.load(layout.TEXT_PRETRAINED)
    write_json(
        method_result("zeroshot", bench.rows(lambda task: zeroshot)), results.method_metrics_path("zeroshot")
    )
    finetuned = bench.rows(lambda task: bench.load(layout.text_finetuned(task)))
    write_json(method_result("finetuned", finetuned), results.method_metrics_path("finetuned"))


if __name__ == "__main__":
    exit_on_error(main)
