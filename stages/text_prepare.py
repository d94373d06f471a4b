"""Stage text-prepare@TASK: one text task's prompted train / val / test examples: generated from
the seed (pocket text tasks), or read from the dataset's files under text.data.root and rendered
with the task's prompt template (the paper's 11 tasks)."""

import argparse

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.text.tasks import get_text_task, write_task_data
from tallmerge.text_params import TextParams


def main(task: str) -> None:
    text = TextParams.load()
    data = text.data
    write_task_data(get_text_task(task), data.sizes, text.seed, data.root, layout.text_data(task))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
