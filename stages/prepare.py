"""Stage prepare@TASK: generate one task's train / val / test splits from the seed."""

import argparse

from tallmerge import layout
from tallmerge.data import write_task_data
from tallmerge.errors import exit_on_error
from tallmerge.params import Params
from tallmerge.tasks import get_task


def main(task_name: str) -> None:
    params = Params.load()
    sizes = params.data
    write_task_data(
        get_task(task_name),
        {"train": sizes.train, "val": sizes.val, "test": sizes.test},
        params.seed,
        layout.task_data(task_name),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    exit_on_error(main, parser.parse_args().task)
