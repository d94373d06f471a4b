"""Stage finetune@TASK: build the task's zero-shot head from the text tower, freeze it, and
fine-tune the image encoder on the task's training split. On a GPU when there is one; on
several with `torchrun --nproc-per-node N stages/finetune.py TASK` (same results contract)."""

import argparse

from tallmerge import layout
from tallmerge.data import read_split
from tallmerge.errors import exit_on_error
from tallmerge.heads import Classifier, save_head, zeroshot_head
from tallmerge.models import image_stats, load_clip, save_visual, tokenizer
from tallmerge.params import Params
from tallmerge.runtime import launched
from tallmerge.tasks import get_task
from tallmerge.train import finetune


def main(task_name: str) -> None:
    params = Params.load()
    cfg, arch = params.finetune(task_name), params.arch
    task = get_task(task_name)
    images, labels = read_split(layout.task_data(task_name), "train")

    with launched() as rt:  # one process, or each of torchrun's (DDP)
        model = load_clip(arch, layout.PRETRAINED_VISUAL, layout.PRETRAINED_TEXT)
        head = zeroshot_head(model, tokenizer(arch), task.classnames, task.templates)
        classifier = Classifier(model.visual, head, *image_stats(model))
        finetune(classifier, images, labels, cfg, params.seed, desc=f"finetune {task_name}")
        if rt.main:
            save_head(head, task.classnames, task_name, layout.head(task_name))
            save_visual(model.visual.state_dict(), arch, layout.finetuned(task_name), task=task_name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
