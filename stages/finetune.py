"""Stage finetune@TASK: build the task's zero-shot head from the text tower, freeze it, and
fine-tune the image encoder on the task's training split. On a GPU when there is one; on
several with `torchrun --nproc-per-node N stages/finetune.py TASK` (same results contract).
With `tasks.<task>.import: PATH`, the task's fine-tuned encoder is imported from a public
checkpoint instead (Hugging Face, open_clip or task-vectors format; see `tallmerge import`)."""

import argparse

from tallmerge import layout
from tallmerge.clip.batches import split_for
from tallmerge.clip.convert import import_checkpoint
from tallmerge.clip.heads import Classifier, save_head, zeroshot_head
from tallmerge.clip.models import load_clip, save_visual, tokenizer
from tallmerge.clip.runtime import launched
from tallmerge.clip.train import finetune
from tallmerge.errors import exit_on_error
from tallmerge.params import Params
from tallmerge.tasks.datafile import TaskData


def main(task_name: str) -> None:
    params = Params.load()
    cfg, arch, data = params.finetune(task_name), params.arch, params.data
    task = TaskData(layout.task_data(task_name), data.root)  # class names, templates, splits

    with launched() as rt:  # one process, or each of torchrun's (DDP)
        model = load_clip(arch, layout.PRETRAINED_VISUAL, layout.PRETRAINED_TEXT)
        head = zeroshot_head(model, tokenizer(arch), task.classnames, task.templates)
        source = params.imported(task_name)
        if source is None:
            train = split_for(task, "train", model, train=True, workers=data.workers)
            finetune(Classifier(model.visual, head), train, cfg, params.seed, desc=f"finetune {task_name}")
            state, origin = model.visual.state_dict(), {}
        else:  # a public fine-tuned checkpoint instead of our own fine-tuning
            state, origin = import_checkpoint(source, arch), {"imported": source}
        if rt.main:
            save_head(head, task.classnames, task_name, layout.head(task_name))
            save_visual(state, arch, layout.finetuned(task_name), task=task_name, **origin)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
