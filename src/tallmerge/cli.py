"""The ``tallmerge`` command line."""

from __future__ import annotations

import argparse

from tallmerge import __version__
from tallmerge.errors import exit_on_error


def _cmd_tasks(args: argparse.Namespace) -> None:
    from tallmerge.tasks import available_tasks, get_task

    for name in available_tasks():
        task = get_task(name)
        print(f"{name:16s} {len(task.classnames):3d} classes: {', '.join(task.classnames)}")


def _cmd_models(args: argparse.Namespace) -> None:
    from tallmerge.models import CONFIG_DIR, available_models

    pocket = {p.stem for p in CONFIG_DIR.glob("*.json")}
    for name in available_models():
        if args.all or name in pocket:
            print(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tallmerge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tallmerge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the registered tasks and their classes")
    tasks.set_defaults(run=_cmd_tasks)

    models = commands.add_parser("models", help="list the model architectures (pocket configs by default)")
    models.add_argument("--all", action="store_true", help="also list every open_clip architecture")
    models.set_defaults(run=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    exit_on_error(args.run, args)


if __name__ == "__main__":
    main()
