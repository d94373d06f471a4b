"""The ``tallmerge`` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from tallmerge import __version__
from tallmerge.errors import exit_on_error


@contextlib.contextmanager
def writing(out, inputs):
    """Before any work: refuse an ``--out`` that is, lies inside or contains one of ``inputs``,
    and hold the output's lock (a second run writing there fails at once)."""
    from tallmerge.formats.files import check_output, output_lock

    check_output(out, [str(p) for p in inputs])
    with output_lock(out):
        yield


def _cmd_tasks(args: argparse.Namespace) -> None:
    from tallmerge.errors import TallmergeError
    from tallmerge.tasks import PRESETS, DatasetTask, available_tasks, get_task

    if args.text:
        _text_tasks(args.preset)
        return
    if args.preset and args.preset not in PRESETS:
        raise TallmergeError(f"unknown preset {args.preset!r}; available: {', '.join(PRESETS)}")
    if args.root:
        _check_datasets(args.root, PRESETS[args.preset or "paper-20"])
        return
    if args.preset:
        print(f"tasks:  # {args.preset}: the paper's first {len(PRESETS[args.preset])} tasks")
        for name in PRESETS[args.preset]:
            print(f"  {name}: {{}}")
        return
    for name in available_tasks():
        task = get_task(name)
        if isinstance(task, DatasetTask):
            print(f"{name:16s} dataset under data.root: {task.layout}")
        else:
            print(f"{name:16s} {len(task.classnames):3d} classes: {', '.join(task.classnames)}")


def _text_tasks(preset: str | None) -> None:
    """The text tasks (pocket ones with the paper task each stands for, datasets with their
    layout), or a suite's ``text: tasks:`` block for params.yaml."""
    from tallmerge.errors import TallmergeError
    from tallmerge.text.tasks import SUITES, available_text_tasks, get_text_task

    if preset:
        if preset not in SUITES:
            raise TallmergeError(f"unknown text suite {preset!r}; available: {', '.join(SUITES)}")
        print(f"text:\n  tasks:  # {preset}: the paper's suite, read from text.data.root")
        for name in SUITES[preset]:
            print(f"    {name}: {{}}")
        return
    for name in available_text_tasks():
        task = get_text_task(name)
        layout = getattr(task, "layout", None)
        if layout is not None:
            print(f"{name:20s} dataset under text.data.root: {layout()}")
        else:
            print(
                f"{name:20s} pocket, stands for {task.paper_task}: {(task.__doc__ or '').strip().splitlines()[0]}"
            )


def _check_datasets(root: str, names) -> None:
    """Read every named dataset's official splits under ``root``: one line per task, and a
    one-line error naming the missing or broken ones."""
    from pathlib import Path

    from tallmerge.errors import TallmergeError
    from tallmerge.tasks import get_task

    broken = []
    for name in names:
        try:
            train, test = (get_task(name).read(Path(root), split) for split in ("train", "test"))
        except TallmergeError as e:
            broken.append(name)
            print(f"{name:16s} MISSING  {e}")
            continue
        print(
            f"{name:16s} ok       {len(train):7d} train {len(test):7d} test {len(train.classnames):4d} classes"
        )
    if broken:
        raise TallmergeError(
            f"{len(broken)} of {len(names)} datasets missing or unreadable under {root}: {', '.join(broken)}"
        )


def _cmd_models(args: argparse.Namespace) -> None:
    from tallmerge.clip.models import CONFIG_DIR, available_models

    pocket = {p.stem for p in CONFIG_DIR.glob("*.json")}
    for name in available_models():
        if args.all or name in pocket:
            print(name)


def parse_finetuned(specs: list[str]) -> dict[str, str]:
    """``[NAME=]PATH`` arguments -> {name: path}; NAME defaults to the file's stem."""
    from pathlib import Path

    from tallmerge.errors import TallmergeError

    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or "/" in name or os.sep in name:
            name, path = Path(spec).stem, spec
        if name in out:
            raise TallmergeError(f"task name '{name}' given twice (use NAME=PATH to name checkpoints)")
        out[name] = path
    return out


def _cmd_merge(args: argparse.Namespace) -> None:
    from tallmerge.merging.methods import merge_files
    from tallmerge.merging.recipes import OPTIONS

    finetuned = parse_finetuned(args.finetuned)
    with writing(args.out, [args.base, *finetuned.values(), *([args.masks] if args.masks else [])]):
        described = merge_files(
            args.method,
            args.base,
            finetuned,
            args.out,
            device=args.device,
            lam=args.lam,
            masks=args.masks,
            mtv=args.mtv,
            **{name: getattr(args, name) for name in OPTIONS},
        )
    options = ", ".join(f"{k}={v}" for k, v in described.items() if k not in ("method", "tasks"))
    print(f"{args.out}: {args.method} of {len(described['tasks'])} tasks ({options})")


def mtv_from_args(args: argparse.Namespace):
    """``--mtv KIND`` with the recipe options given on the command line (``--topk``, ...)."""
    from tallmerge.merging.recipes import MTV_RECIPES, OPTIONS, MultiTaskVector, check_options, recipe_named

    kind = args.mtv or "ta"
    given = {n: getattr(args, n) for n in RECIPE_OPTIONS if getattr(args, n) is not None}
    checked = check_options(
        tuple(recipe_named(kind, "--mtv", MTV_RECIPES).options),
        given,
        f"--mtv {kind}",
        lambda n: OPTIONS[n].cli,
    )
    return MultiTaskVector(kind, **checked)


def _cmd_masks(args: argparse.Namespace) -> None:
    from tallmerge.merging.checkpoints import Checkpoints
    from tallmerge.merging.masks import write_masks

    mtv = mtv_from_args(args)
    finetuned = parse_finetuned(args.finetuned)
    with (
        writing(args.out, [args.base, *finetuned.values()]),
        Checkpoints(args.base, finetuned, args.device) as ckpts,
    ):
        write_masks(args.out, ckpts, args.lam, mtv)
        print(
            f"{args.out}: TALL masks of {len(ckpts)} tasks at lambda {', '.join(map(str, args.lam))} (tau_MTL: {mtv.kind})"
        )


def _cmd_compress(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tallmerge.errors import TallmergeError
    from tallmerge.merging.checkpoints import Checkpoints
    from tallmerge.merging.masks import MaskFile
    from tallmerge.merging.recipes import OPTIONS
    from tallmerge.store.build import compress, emr_mask_source, tall_mask_source, tall_mask_source_at
    from tallmerge.store.lowrank import compress_low_rank, open_store
    from tallmerge.store.manifest import replaceable_store

    recipe_given = [OPTIONS[n].cli for n in RECIPE_OPTIONS if getattr(args, n) is not None]
    if args.scheme == "tall":
        if (args.lam is None) == (args.masks is None):
            raise TallmergeError("compress --scheme tall needs exactly one of --lambda L or --masks MASKS")
        if args.masks is not None and recipe_given:
            raise TallmergeError(
                f"{recipe_given[0]}: with --masks, tau_MTL is formed as the masks were; recipe options do not apply"
            )
    else:
        given = [
            f
            for f, v in (("--lambda", args.lam), ("--masks", args.masks), ("--mtv", args.mtv))
            if v is not None
        ]
        if given + recipe_given:
            raise TallmergeError(f"{(given + recipe_given)[0]} does not apply to --scheme {args.scheme}")
    mtv = mtv_from_args(args) if args.lam is not None else None
    finetuned = parse_finetuned(args.finetuned)
    inputs = [args.base, *finetuned.values(), *([args.masks] if args.masks else [])]
    with writing(args.out, inputs), Checkpoints(args.base, finetuned, args.device) as ckpts:
        replaceable_store(Path(args.out))  # refuse a folder that is not a store before any work
        if args.scheme == "tsv-c":
            compress_low_rank(args.out, ckpts, args.vector_dtype)
        elif args.scheme == "emr":
            compress(args.out, ckpts, emr_mask_source(ckpts), args.vector_dtype)
        elif args.masks is not None:
            with MaskFile(args.masks) as masks:
                if args.mtv is not None and masks.mtv.kind != args.mtv:
                    raise TallmergeError(
                        f"{args.masks}: masks were built with tau_MTL = {masks.mtv}, not --mtv {args.mtv}"
                    )
                compress(args.out, ckpts, tall_mask_source(masks, ckpts), args.vector_dtype)
        else:
            compress(args.out, ckpts, tall_mask_source_at(ckpts, args.lam, mtv), args.vector_dtype)
    print(open_store(args.out).describe())


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    from tallmerge.errors import TallmergeError
    from tallmerge.store.lowrank import open_store

    if (args.task is None) == (not args.all):
        raise TallmergeError("reconstruct needs exactly one of --task NAME or --all")
    with writing(args.out, [args.store]):
        store = open_store(args.store)
        if args.all:
            paths = store.reconstruct_all(args.out)
            print(
                f"{args.out}: {len(paths)} tasks rebuilt from {args.store} ({', '.join(p.name for p in paths)})"
            )
            return
        store.reconstruct(args.task, args.out)
    print(f"{args.out}: task '{args.task}' rebuilt from {args.store}")


def _cmd_info(args: argparse.Namespace) -> None:
    from tallmerge.store.lowrank import open_store

    print(open_store(args.store).describe())


def _cmd_import(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tallmerge.clip.convert import import_checkpoint
    from tallmerge.clip.models import save_visual
    from tallmerge.errors import TallmergeError
    from tallmerge.formats.files import atomic_write, check_output, refuse_special

    checkpoints = parse_finetuned(args.checkpoints)
    if not str(args.out).strip():
        raise TallmergeError("--out is empty; give a folder to write NAME.safetensors into")
    out = Path(args.out)
    refuse_special(out)
    if out.exists() and not out.is_dir():
        raise TallmergeError(f"--out {out} is a file; give a folder to write NAME.safetensors into")
    for name in checkpoints:  # a folder around the inputs is fine, overwriting one is not
        check_output(out / f"{name}.safetensors", checkpoints.values())
    # One checkpoint in memory at a time; every output is renamed into place only once all are converted.
    with writing(out, []), contextlib.ExitStack() as outputs:
        for name, path in checkpoints.items():
            tmp = outputs.enter_context(atomic_write(Path(args.out) / f"{name}.safetensors"))
            save_visual(import_checkpoint(path, args.arch), args.arch, tmp, source=str(path))
    for name, path in checkpoints.items():
        print(f"{Path(args.out) / f'{name}.safetensors'}: {args.arch} image encoder from {path}")


def _add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="BASE", help="pre-trained checkpoint (safetensors)")
    parser.add_argument(
        "--finetuned",
        required=True,
        nargs="+",
        metavar="[NAME=]PATH",
        help="fine-tuned checkpoints with the base's keys, shapes and dtypes; NAME defaults to the file stem",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help="where the merge maths run, e.g. cuda or cuda:1 (default: the CPU); files stay on the CPU",
    )


def _registry_options():
    from tallmerge.merging.recipes import METHODS, MTV_RECIPES

    recipe = tuple(dict.fromkeys(n for r in MTV_RECIPES.values() for n in r.options))
    method = tuple(dict.fromkeys(n for m in METHODS.values() for n in m.options))
    return recipe, method


RECIPE_OPTIONS, METHOD_OPTIONS = _registry_options()


def _add_option_args(parser: argparse.ArgumentParser, names) -> None:
    """One flag per registry option; not given, it takes the method's (or recipe's) default."""
    from tallmerge.merging.recipes import METHODS, OPTIONS

    for name in names:
        option = OPTIONS[name]
        by_value: dict = {}
        for m in METHODS.values():
            if name in m.options:
                by_value.setdefault(m.defaults()[name], []).append(m.name)
        defaults = (
            [f"{value:g}" if isinstance(value, float) else str(value) for value in by_value]
            if len(by_value) == 1
            else [f"{', '.join(names)}: {value}" for value, names in by_value.items()]
        )
        parser.add_argument(
            option.cli,
            dest=name,
            type=option.kind,
            choices=option.choices,
            help=f"{option.help} (default {'; '.join(defaults)})",
        )


class _Parser(argparse.ArgumentParser):
    """Usage errors are bad input like any other: one line, exit status 2."""

    def error(self, message: str):
        from tallmerge.errors import TallmergeError

        raise TallmergeError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tallmerge",
        description=__doc__,
        epilog="Errors are one line on stderr: exit status 2 for bad input, 130 when interrupted, 1 for a bug.",
    )
    parser.add_argument("--version", action="version", version=f"tallmerge {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or set TALLMERGE_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser(
        "tasks",
        help="list the registered tasks (pocket tasks with their classes, datasets with their layout)",
    )
    tasks.add_argument(
        "--preset",
        metavar="NAME",
        help="print the params.yaml `tasks:` block of a preset "
        "(paper-8, paper-14, paper-20: the paper's benchmarks, in its order; with --text: nlp7, qa8, all11)",
    )
    tasks.add_argument(
        "--text", action="store_true", help="the text tasks (pocket text tasks, the paper's 11 NLP datasets)"
    )
    tasks.add_argument(
        "--root",
        metavar="DIR",
        help="check that the preset's datasets (default: all 20) are "
        "readable under DIR (a data.root): counts per task, or what is missing",
    )
    tasks.set_defaults(run=_cmd_tasks)

    models = commands.add_parser("models", help="list the model architectures (pocket configs by default)")
    models.add_argument("--all", action="store_true", help="also list every open_clip architecture")
    models.set_defaults(run=_cmd_models)

    from tallmerge.merging.recipes import METHODS, MTV_RECIPES, VECTOR_FORMATS

    merge = commands.add_parser(
        "merge",
        help="merge fine-tuned checkpoints into one model, streaming one tensor at a time",
        description="Merge fine-tuned checkpoints into one model: theta_0 + alpha * vector, written atomically. "
        "Options a method does not take are an error.",
    )
    merge.add_argument("method", choices=METHODS, metavar="METHOD", help=f"one of: {', '.join(METHODS)}")
    _add_checkpoint_args(merge)
    merge.add_argument(
        "--out",
        required=True,
        metavar="OUT",
        help="merged model to write (safetensors, the base's keys and dtypes)",
    )
    _add_option_args(merge, METHOD_OPTIONS)
    merge.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        metavar="L",
        help="consensus: build TALL masks on the fly at this lambda",
    )
    merge.add_argument(
        "--masks", metavar="MASKS", help="consensus: use these TALL masks (a file with one lambda per task)"
    )
    merge.add_argument(
        "--mtv", choices=tuple(MTV_RECIPES), help="consensus: how tau_MTL is formed (follows the method)"
    )
    merge.set_defaults(run=_cmd_merge)

    masks = commands.add_parser(
        "masks",
        help="compute TALL masks (1 bit per weight) for every task at each lambda",
        description="TALL masks m_t = |tau_t| > lambda * |tau_MTL - tau_t| for every task and lambda, packed 1 bit per weight.",
    )
    _add_checkpoint_args(masks)
    masks.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        nargs="+",
        required=True,
        metavar="L",
        help="one or more lambdas (a grid to select from per task)",
    )
    masks.add_argument(
        "--mtv",
        choices=tuple(MTV_RECIPES),
        default="ta",
        help="tau_MTL: how the task vectors are merged (default ta, their sum; ties uses the disjoint sum)",
    )
    _add_option_args(masks, RECIPE_OPTIONS)
    masks.add_argument(
        "--out", required=True, metavar="MASKS", help="mask file to write (safetensors of packed bits)"
    )
    masks.set_defaults(run=_cmd_masks)

    compress = commands.add_parser(
        "compress",
        help="store T fine-tuned models as the base + one merged vector + T coded masks (or low-rank parts)",
        description="Build a compressed multi-task store. --scheme tall (default): the pre-trained model, one "
        "merged vector tau_MTL and each task's TALL mask (entropy-coded); task t = theta_0 + m_t * tau_MTL. "
        "--scheme emr (EMR-Merging): a unified vector, each task's mask of agreeing signs and one rescaler; "
        "task t = theta_0 + s_t * m_t * tau_uni. --scheme tsv-c: each task's own rank-(r/T) task vector.",
    )
    _add_checkpoint_args(compress)
    compress.add_argument(
        "--scheme",
        choices=("tall", "emr", "tsv-c"),
        default="tall",
        help="what each task keeps (default tall); emr and tsv-c take no --lambda, --masks or --mtv",
    )
    compress.add_argument(
        "--lambda", dest="lam", type=float, metavar="L", help="TALL masks at this lambda for every task"
    )
    compress.add_argument(
        "--masks", metavar="MASKS", help="TALL masks with one lambda per task (e.g. selected on validation)"
    )
    compress.add_argument(
        "--mtv",
        choices=tuple(MTV_RECIPES),
        help="tau_MTL: how the task vectors are merged (default ta with --lambda); with --masks, the masks' own",
    )
    _add_option_args(compress, RECIPE_OPTIONS)
    compress.add_argument(
        "--vector-dtype",
        choices=VECTOR_FORMATS,
        default="fp32",
        help="precision of the stored merged vector: fp32 (the default: reconstruction is exact), "
        "bf16, fp16, or int8 / int4 / int3 / int2 (block-quantized, 128 values per scale)",
    )
    compress.add_argument(
        "--out",
        required=True,
        metavar="STORE_DIR",
        help="store folder to write (replaces a store already there)",
    )
    compress.set_defaults(run=_cmd_compress)

    reconstruct = commands.add_parser(
        "reconstruct",
        help="rebuild one task's model from a store",
        description="Rebuild task NAME's model theta_0 + m_t * tau_MTL from a store, after verifying its "
        "checksums; any task takes the same time. --all rebuilds every task in one pass over the store.",
    )
    reconstruct.add_argument("store", metavar="STORE_DIR")
    reconstruct.add_argument(
        "--task", metavar="NAME", help="the task to rebuild (`tallmerge info` lists them)"
    )
    reconstruct.add_argument(
        "--all", action="store_true", help="rebuild every task, to OUT/<task>.safetensors (OUT a folder)"
    )
    reconstruct.add_argument(
        "--out",
        required=True,
        metavar="OUT",
        help="model to write (safetensors, the base's keys and dtypes); with --all, a folder",
    )
    reconstruct.set_defaults(run=_cmd_reconstruct)

    imports = commands.add_parser(
        "import",
        help="convert image encoders from other checkpoint formats into tallmerge's (safetensors)",
        description="Read fine-tuned (or pre-trained) CLIP image encoders from Hugging Face transformers CLIP "
        "checkpoints, open_clip state dicts or pickled task-vectors ImageEncoders (never running code from the "
        "file), check them against --arch, and write each as OUT/NAME.safetensors.",
    )
    imports.add_argument(
        "checkpoints",
        nargs="+",
        metavar="[NAME=]PATH",
        help="checkpoint files or Hugging Face model folders; NAME defaults to the file stem",
    )
    imports.add_argument(
        "--arch",
        required=True,
        help="the open_clip architecture they must match (e.g. ViT-B-32-quickgelu for OpenAI CLIP)",
    )
    imports.add_argument("--out", required=True, metavar="DIR", help="folder to write NAME.safetensors into")
    imports.set_defaults(run=_cmd_import)

    info = commands.add_parser(
        "info", help="describe a store: tasks, lambdas, sizes by component, bits per weight"
    )
    info.add_argument("store", metavar="STORE_DIR")
    info.set_defaults(run=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    exit_on_error(_run, argv, debug="--debug" in argv)


def _run(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
