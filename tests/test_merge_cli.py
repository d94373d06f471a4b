"""`tallmerge merge` and `tallmerge masks`: the command-line contract and its bad-input paths."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import fails, finetuned_args, make_case, run, save_case
from reference import ref_merge


@pytest.fixture
def case(tmp_path):
    base, finetuned = make_case(seed=31, tasks=3)
    base_path, paths = save_case(tmp_path, base, finetuned)
    return base, finetuned, base_path, paths


def test_merge_command(case, tmp_path, capsys):
    base, finetuned, base_path, paths = case
    out = tmp_path / "merged.safetensors"
    status, stdout, _ = run(
        [
            "merge",
            "ties",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--out",
            out,
            "--alpha",
            "0.4",
            "--topk",
            "30",
        ],
        capsys,
    )
    assert status == 0 and str(out) in stdout
    expected = ref_merge("ties", base, finetuned, alpha=0.4, topk=30.0)
    assert all(torch.equal(load_file(out)[k], v) for k, v in expected.items())


def test_names_default_to_file_stems(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "masks.safetensors"
    status, _, _ = run(
        [
            "masks",
            "--base",
            base_path,
            "--finetuned",
            *paths.values(),
            "--lambda",
            "0.3",
            "0.5",
            "--out",
            out,
        ],
        capsys,
    )
    assert status == 0
    from tallmerge.merging.masks import MaskFile

    with MaskFile(out) as masks:
        assert masks.tasks == ["task0", "task1", "task2"]
        assert masks.lambdas["task1"] == [0.3, 0.5]
    # The grid must be narrowed to one lambda per task before consensus can use it.
    fails(
        [
            "merge",
            "consensus-ta",
            "--base",
            base_path,
            "--finetuned",
            *paths.values(),
            "--masks",
            out,
            "--out",
            tmp_path / "c.safetensors",
        ],
        capsys,
        str(out),
        "one per task",
    )
    assert not (tmp_path / "c.safetensors").exists()


def test_help_explains_every_option(capsys):
    status, stdout, _ = run(["merge", "--help"], capsys)
    assert status == 0
    for option in (
        "--base",
        "--finetuned",
        "--out",
        "--alpha",
        "--topk",
        "--ties-agg",
        "--lambda",
        "--masks",
        "--k",
        "--mtv",
    ):
        assert option in stdout


def _corrupt(tmp_path, base, change):
    """A fine-tuned file equal to the base except for ``change(state)``."""
    state = {k: v.clone() for k, v in base.items()}
    change(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, path)
    return path


@pytest.mark.parametrize(
    "change,needles",
    [
        (lambda s: s.pop("embed"), ["missing tensor 'embed'"]),
        (lambda s: s.update(extra=torch.zeros(2)), ["unexpected tensor 'extra'"]),
        (lambda s: s.update(embed=torch.zeros(4, 3, dtype=torch.float16)), ["'embed'", "shape"]),
        (lambda s: s.update(embed=s["embed"].float()), ["'embed'", "float32"]),
        (
            lambda s: s["blocks.0.attn.bias"].__setitem__(3, float("nan")),
            ["'blocks.0.attn.bias'", "NaN or Inf"],
        ),
        (lambda s: s["embed"].__setitem__((0, 0), float("inf")), ["'embed'", "NaN or Inf"]),
    ],
    ids=["missing", "extra", "shape", "dtype", "nan", "inf"],
)
def test_bad_checkpoints_fail_without_output(case, tmp_path, capsys, change, needles):
    base, _, base_path, paths = case
    bad = _corrupt(tmp_path, base, change)
    out = tmp_path / "merged.safetensors"
    out.write_bytes(b"previous result")  # an earlier output must survive a failed run
    fails(
        [
            "merge",
            "task-arithmetic",
            "--base",
            base_path,
            "--finetuned",
            paths["task0"],
            f"bad={bad}",
            "--out",
            out,
        ],
        capsys,
        str(bad),
        *needles,
    )
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    "args,needles",
    [
        (["merge", "consensus-ta", "--lambda", "0.4"], ["at least 2 tasks"]),
        (["masks", "--lambda", "0.4"], ["at least 2 tasks"]),
        (["compress", "--lambda", "0.4"], ["at least 2 tasks"]),
    ],
)
def test_too_few_tasks(case, tmp_path, capsys, args, needles):
    _, _, base_path, paths = case
    out = tmp_path / "out.safetensors"
    fails(
        [*args[:2], *args[2:], "--base", base_path, "--finetuned", paths["task0"], "--out", out],
        capsys,
        *needles,
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["merge", "consensus-ta", "--lambda", "0"], ["lambda must be a positive number", "0.0"]),
        (["merge", "consensus-ta", "--lambda", "-0.2"], ["lambda must be a positive number"]),
        (["masks", "--lambda", "0.2", "-1"], ["lambda must be a positive number", "-1.0"]),
        (["merge", "task-arithmetic", "--alpha", "-0.5"], ["alpha must be a non-negative number", "-0.5"]),
        (["merge", "average", "--alpha", "0.5"], ["--alpha", "average"]),
        (["merge", "task-arithmetic", "--topk", "10"], ["--topk does not apply", "task-arithmetic"]),
        (["merge", "ties", "--topk", "120"], ["--topk must be a percentage", "120"]),
        (["merge", "tsv-m", "--topk", "10"], ["--topk does not apply to method 'tsv-m'"]),
        (["merge", "iso-cts", "--common-fraction", "1.5"], ["--common-fraction must be a number in (0, 1]"]),
        (
            ["merge", "iso-c", "--common-fraction", "0.5"],
            ["--common-fraction does not apply to method 'iso-c'"],
        ),
        (["merge", "ties", "--k", "2"], ["--k does not apply to method 'ties'"]),
        (["merge", "tsv-m", "--lambda", "0.4"], ["--lambda does not apply to method 'tsv-m'"]),
        (["masks", "--lambda", "0.4", "--topk", "10"], ["--topk does not apply to --mtv ta"]),
        (["merge", "consensus-ta"], ["needs exactly one of --lambda L or --masks MASKS"]),
        (["merge", "consensus-ta", "--lambda", "0.4", "--mtv", "ties"], ["contradicts"]),
        (["merge", "consensus-ta", "--lambda", "0.4", "--k", "-1"], ["k must be a non-negative integer"]),
        (["merge", "consensus-ta", "--masks", "nowhere.safetensors"], ["nowhere.safetensors", "not found"]),
    ],
)
def test_bad_options(case, tmp_path, capsys, args, needles):
    _, _, base_path, paths = case
    out = tmp_path / "out.safetensors"
    fails([*args, "--base", base_path, *finetuned_args(paths), "--out", out], capsys, *needles)
    assert not out.exists()


def test_unknown_method(case, tmp_path, capsys):
    _, _, base_path, paths = case
    status, _, err = run(
        ["merge", "median", "--base", base_path, *finetuned_args(paths), "--out", tmp_path / "o"], capsys
    )
    assert status == 2 and "median" in err.strip().splitlines()[-1]


def test_corrupt_and_missing_files(case, tmp_path, capsys):
    _, _, base_path, paths = case
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(paths["task1"].read_bytes()[:-10])
    fails(
        [
            "merge",
            "average",
            "--base",
            base_path,
            "--finetuned",
            paths["task0"],
            truncated,
            "--out",
            tmp_path / "o",
        ],
        capsys,
        str(truncated),
        "truncated",
    )
    fails(
        [
            "merge",
            "average",
            "--base",
            tmp_path / "none.safetensors",
            "--finetuned",
            paths["task0"],
            "--out",
            tmp_path / "o",
        ],
        capsys,
        "none.safetensors",
        "not found",
    )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    fails(
        [
            "merge",
            "average",
            "--base",
            base_path,
            "--finetuned",
            paths["task0"],
            garbage,
            "--out",
            tmp_path / "o",
        ],
        capsys,
        str(garbage),
        "not a valid safetensors file",
    )
    fails(
        [
            "merge",
            "average",
            "--base",
            base_path,
            "--finetuned",
            paths["task0"],
            f"task0={paths['task1']}",
            "--out",
            tmp_path / "o",
        ],
        capsys,
        "task0",
        "twice",
    )


def test_masks_of_another_tau_mtl_are_refused(case, tmp_path, capsys):
    _, _, base_path, paths = case
    masks = tmp_path / "masks.safetensors"
    run(
        [
            "masks",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--lambda",
            "0.4",
            "--mtv",
            "ties",
            "--topk",
            "30",
            "--out",
            masks,
        ],
        capsys,
    )
    fails(
        [
            "merge",
            "consensus-ties",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--masks",
            masks,
            "--out",
            tmp_path / "o",
        ],
        capsys,
        "top-30%",
        "top-20%",
    )
    status, _, _ = run(
        [
            "merge",
            "consensus-ties",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--masks",
            masks,
            "--topk",
            "30",
            "--out",
            tmp_path / "o",
        ],
        capsys,
    )
    assert status == 0


# -- --device: where the per-tensor maths run -------------------------------------------------------
@pytest.mark.parametrize("command", ["merge", "masks", "compress"])
def test_an_unavailable_device_is_refused_before_any_work(case, tmp_path, capsys, command):
    _, _, base_path, paths = case
    out = tmp_path / "out"
    args = {
        "merge": ["merge", "tsv-m"],
        "masks": ["masks", "--lambda", "0.4"],
        "compress": ["compress", "--lambda", "0.4"],
    }[command]
    for device in ("meta", "no-such-device"):
        fails(
            [*args, "--base", base_path, *finetuned_args(paths), "--out", out, "--device", device],
            capsys,
            device,
        )
        assert not out.exists()


def test_the_cpu_as_device_gives_the_default_merge(case, tmp_path, capsys):
    _, _, base_path, paths = case
    outs = [tmp_path / "default.safetensors", tmp_path / "cpu.safetensors"]
    for out, extra in zip(outs, ([], ["--device", "cpu"])):
        status, _, _ = run(
            ["merge", "iso-cts", "--base", base_path, *finetuned_args(paths), "--out", out, *extra], capsys
        )
        assert status == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["ties", "tsv-m", "iso-cts", "consensus-ties"])
def test_a_merge_on_the_gpu_equals_the_cpu_one(case, tmp_path, method):
    from tallmerge.merging.methods import merge_files

    _, _, base_path, paths = case
    options = {"lam": 0.4} if method.startswith("consensus-") else {}
    for device in ("cpu", "cuda"):
        merge_files(method, base_path, paths, tmp_path / f"{device}.safetensors", device=device, **options)
    cpu, gpu = (load_file(tmp_path / f"{d}.safetensors") for d in ("cpu", "cuda"))
    for key, value in cpu.items():
        torch.testing.assert_close(gpu[key], value, atol=1e-5, rtol=1e-4)
