"""Stage evaluate: zero-shot and fine-tuned top-1 on every task's val and test splits."""

import pandas as pd

from tallmerge import layout
from tallmerge.data import read_splits
from tallmerge.errors import exit_on_error
from tallmerge.heads import Classifier, load_head
from tallmerge.io import write_csv, write_json
from tallmerge.metrics import summarize
from tallmerge.models import create_clip, image_stats, load_visual
from tallmerge.params import Params
from tallmerge.train import accuracy

EVAL_SPLITS = ("val", "test")


def main() -> None:
    params = Params.load()
    model = create_clip(params.arch)
    stats = image_stats(model)
    rows = []
    for task in params.tasks:
        head = load_head(layout.head(task))
        splits = read_splits(layout.task_data(task), EVAL_SPLITS)
        for method, weights in (("zeroshot", layout.PRETRAINED_VISUAL), ("finetuned", layout.finetuned(task))):
            classifier = Classifier(load_visual(model, weights).visual, head, *stats)
            for split, (images, labels) in splits.items():
                top1 = accuracy(classifier, images, labels, params.eval_batch_size)
                rows.append({"method": method, "task": task, "split": split, "top1": top1})
    frame = pd.DataFrame(rows, columns=["method", "task", "split", "top1"])
    write_csv(frame, layout.ACCURACY_CSV)
    write_json(summarize(frame), layout.SUMMARY_JSON)


if __name__ == "__main__":
    exit_on_error(main)
