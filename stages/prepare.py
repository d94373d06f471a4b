"""Stage prepare@TASK: one task's train / val / test splits: generated from the seed (pocket
tasks), or an index into the dataset's files under data.root (val held out of its train split
with the seed)."""

import argparse

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.params import Params
from tallmerge.tasks import get_task
from tallmerge.tasks.datafile import prepare


def main(task_name: str) -> None:
    params = Params.load()
    data = params.data
    prepare(get_task(task_name), data.sizes, params.seed, data.root, layout.task_data(task_name))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
