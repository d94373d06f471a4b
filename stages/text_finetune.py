"""Stage text-finetune@TASK: fully fine-tune the pre-trained T5 on one text task's training
split, every weight learning to write the right answer choice (teacher forcing, cross-entropy)."""

import argparse

import torch

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import load_tensors, save_tensors
from tallmerge.text import t5
from tallmerge.text.tasks import read_split
from tallmerge.text.tokenizer import load_tokenizer
from tallmerge.text.train import finetune_t5
from tallmerge.text_params import TextParams


def main(task: str) -> None:
    text = TextParams.load()
    cfg = text.finetune(task)
    tokenizer = load_tokenizer(layout.TEXT_MODEL)
    model = t5.create_t5(t5.load_config(layout.TEXT_MODEL))
    t5.load_weights(model, load_tensors(layout.TEXT_PRETRAINED)[0], layout.TEXT_PRETRAINED)
    model.to(t5.device())
    train = read_split(layout.text_data(task), "train")
    torch.manual_seed(text.seed)
    finetune_t5(model, tokenizer, train, cfg, text.seed, text.evaluate.max_input, desc=f"finetune {task}")
    save_tensors(t5.weights(model), layout.text_finetuned(task), metadata={"arch": text.arch, "task": task})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
