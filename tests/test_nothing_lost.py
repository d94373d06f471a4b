"""Nothing lost, ever: the command line never deletes or overwrites what it was not asked to,
every bad input ends in one line and a non-zero exit, and nothing is left half-written.
(Random mutations of every input format: tests/test_fuzz.py.)"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import finetuned_args, make_case, run, save_case
from tallmerge.cli import main
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import clean_stale_temporaries, output_lock
from tallmerge.merging import maths
from tallmerge.store.manifest import MANIFEST_DIGEST, VERSION, manifest_digest


@pytest.fixture
def case(tmp_path):
    base, finetuned = make_case(seed=11, tasks=3, dyadic=False)
    base_path, paths = save_case(tmp_path, base, finetuned)
    return base, finetuned, base_path, paths


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones included) with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def compress_args(base_path, paths, out, *extra):
    return ["compress", "--base", base_path, *finetuned_args(paths), "--lambda", "0.4", *extra, "--out", out]


def one_line_failure(argv, capsys, *needles, status=2):
    """The command fails with ``status`` and exactly one line on stderr holding ``needles``."""
    code, _, err = run(argv, capsys)
    assert code == status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(str(n) in err for n in needles), err
    return err.strip()


# -- 1. a folder that merely looks like a store is never deleted ----------------------------------
def test_compress_never_deletes_a_folder_that_holds_a_manifest_json(case, tmp_path, capsys):
    _, _, base_path, paths = case
    app = tmp_path / "webapp"
    (app / "static").mkdir(parents=True)
    (app / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    (app / "static" / "app.js").write_text("console.log(1)")
    before = snapshot(app)
    one_line_failure(compress_args(base_path, paths, app), capsys, app, "not a tallmerge store")
    assert snapshot(app) == before


def test_compress_never_deletes_files_kept_inside_a_real_store(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    assert run(compress_args(base_path, paths, out), capsys)[0] == 0
    (out / "notes.txt").write_text("which lambda did we use?")
    before = snapshot(out)
    one_line_failure(compress_args(base_path, paths, out), capsys, out, "notes.txt", "not part of the store")
    assert snapshot(out) == before
    (out / "notes.txt").unlink()  # a store holding only its own files is replaced
    assert run(compress_args(base_path, paths, out, "--vector-dtype", "bf16"), capsys)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["vector_dtype"] == "bf16"
    assert hidden(tmp_path) == []


def test_a_store_of_another_version_is_recognised_by_its_manifest(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(
        json.dumps({**manifest, "version": 7})
    )  # what a later tallmerge may write
    assert run(compress_args(base_path, paths, out), capsys)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["version"] == VERSION


# -- 2. --out is never an input --------------------------------------------------------------------
def test_out_equal_to_an_input_is_refused_before_any_work(case, tmp_path, capsys):
    _, _, base_path, paths = case
    before = snapshot(tmp_path)
    ckpt = paths["task1"]
    link = tmp_path / "link.safetensors"
    link.symlink_to(ckpt)
    hard = tmp_path / "hard.safetensors"
    os.link(ckpt, hard)
    before = snapshot(tmp_path)
    for out in (base_path, ckpt, link, hard, tmp_path / "sub" / ".." / "task1.safetensors"):
        one_line_failure(
            ["merge", "task-arithmetic", "--base", base_path, *finetuned_args(paths), "--out", out],
            capsys,
            "--out",
            "input",
        )
        one_line_failure(
            ["masks", "--base", base_path, *finetuned_args(paths), "--lambda", "0.4", "--out", out],
            capsys,
            "--out",
            "input",
        )
    assert snapshot(tmp_path) == before


def test_out_equal_to_the_masks_file_is_refused(case, tmp_path, capsys):
    _, _, base_path, paths = case
    masks = tmp_path / "masks.safetensors"
    assert (
        run(
            ["masks", "--base", base_path, *finetuned_args(paths), "--lambda", "0.4", "--out", masks], capsys
        )[0]
        == 0
    )
    before = snapshot(tmp_path)
    one_line_failure(
        [
            "merge",
            "consensus-ta",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--masks",
            masks,
            "--out",
            masks,
        ],
        capsys,
        "--out",
        "is the input",
    )
    one_line_failure(
        ["compress", "--base", base_path, *finetuned_args(paths), "--masks", masks, "--out", masks],
        capsys,
        "--out",
        "is the input",
    )
    assert snapshot(tmp_path) == before


def test_reconstruct_into_its_own_store_is_refused(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    before = snapshot(out)
    for target in (out / "base.safetensors", out / "task0.safetensors", out):
        one_line_failure(["reconstruct", out, "--task", "task0", "--out", target], capsys, "--out")
    assert snapshot(out) == before
    assert run(["info", out], capsys)[0] == 0


def test_compress_into_a_folder_around_an_input_is_refused(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    before = snapshot(out)
    # the store's own base used as the base of the next store written over it
    one_line_failure(
        [
            "compress",
            "--base",
            out / "base.safetensors",
            *finetuned_args(paths),
            "--lambda",
            "0.4",
            "--out",
            out,
        ],
        capsys,
        "contains the input",
    )
    one_line_failure(compress_args(base_path, paths, tmp_path), capsys, "contains the input")
    assert snapshot(out) == before


def test_import_never_overwrites_its_inputs(tmp_path, capsys):
    from tallmerge.clip.models import create_clip

    visual = {k: v.contiguous() for k, v in create_clip("pocket-vit", seed=1).visual.state_dict().items()}
    ckpt = tmp_path / "cars.safetensors"
    save_file(visual, ckpt)
    before = snapshot(tmp_path)
    one_line_failure(["import", "--arch", "pocket-vit", ckpt, "--out", tmp_path], capsys, "is the input")
    assert snapshot(tmp_path) == before


# -- 3. outputs are checked before they land -------------------------------------------------------
def test_non_finite_merge_is_an_error_naming_tensor_and_option(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "merged.safetensors"
    one_line_failure(
        [
            "merge",
            "task-arithmetic",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--alpha",
            "1e39",
            "--out",
            out,
        ],
        capsys,
        "merged tensor 'blocks.0.attn.",
        "not finite",
        "--alpha 1e+39",
    )
    assert not out.exists() and hidden(tmp_path) == []


def test_a_vector_dtype_too_narrow_is_an_error(tmp_path, capsys):
    base = {"w": torch.zeros(4, 4)}
    finetuned = [{"w": torch.full((4, 4), 40000.0)} for _ in range(2)]  # sum 80000 > fp16's 65504
    base_path, paths = save_case(tmp_path, base, finetuned)
    out = tmp_path / "store"
    one_line_failure(
        compress_args(base_path, paths, out, "--vector-dtype", "fp16"), capsys, "'w'", "--vector-dtype fp16"
    )
    assert not out.exists() and hidden(tmp_path) == []


# -- 4. one boundary: one line, exit 2 (bad input) or 130 (interrupted) ----------------------------
def test_out_that_is_a_folder_or_empty_or_unwritable(case, tmp_path, capsys):
    _, _, base_path, paths = case
    merge = ["merge", "average", "--base", base_path, *finetuned_args(paths), "--out"]
    (tmp_path / "folder").mkdir()
    one_line_failure([*merge, tmp_path / "folder"], capsys, "folder", "is a folder")
    one_line_failure([*merge, ""], capsys, "--out is empty")
    one_line_failure([*merge, base_path / "merged.safetensors"], capsys, str(base_path))  # under a file
    one_line_failure([*merge, "/proc/merged.safetensors"], capsys, "/proc")  # a read-only file system
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "base.safetensors",
        "folder",
        "task0.safetensors",
        "task1.safetensors",
        "task2.safetensors",
    ]


def test_unreadable_input_is_one_line(case, tmp_path, capsys, monkeypatch):
    _, _, base_path, paths = case
    real_open = open

    def refusing_open(file, *args, **kwargs):  # root reads any file: refuse like a 000 mode would
        if str(file) == str(paths["task2"]):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    one_line_failure(
        [
            "merge",
            "average",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--out",
            tmp_path / "m.safetensors",
        ],
        capsys,
        paths["task2"],
        "Permission denied",
    )
    assert not (tmp_path / "m.safetensors").exists()


def test_malformed_safetensors_metadata_is_one_line(case, tmp_path, capsys):
    _, _, base_path, paths = case
    raw = paths["task0"].read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    for metadata in ([1, 2], {"a": 1}, "text", 5):
        header["__metadata__"] = metadata
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + length :])
        one_line_failure(
            [
                "merge",
                "average",
                "--base",
                base_path,
                "--finetuned",
                f"t={bad}",
                f"u={paths['task1']}",
                "--out",
                tmp_path / "m.safetensors",
            ],
            capsys,
            bad,
            "__metadata__",
        )


def _first_float(manifest):
    return next(e for e in manifest["tensors"] if e["vector"] is not None)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m.update(tasks_renamed=m.pop("tasks")), "missing key 'tasks'"),
        (lambda m: m.pop("weights"), "missing key 'weights'"),
        (lambda m: m.update(weights=0), "'weights' is 0"),
        (lambda m: _first_float(m).update(shape=[2, 2]), "'weights' is"),
        (lambda m: _first_float(m).update(dtype="F16"), "checksum"),
        (lambda m: m["tensors"][-1].update(dtype="F32"), "vector codec"),
        (lambda m: m.update(mask_bytes={}), "mask_bytes"),
        (lambda m: m.update(finetuned_bytes=0), "checksum"),
        (lambda m: m["masks"].update(lambdas={"task0": 0.4}), "lambda per task"),
    ],
)
def test_hand_edited_manifest_is_one_line(case, tmp_path, capsys, edit, needle):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for argv in (["info", out], ["reconstruct", out, "--task", "task0", "--out", tmp_path / "t.safetensors"]):
        one_line_failure(argv, capsys, out / "manifest.json", needle)
    assert not (tmp_path / "t.safetensors").exists()


def test_a_manifest_dtype_edit_with_a_recomputed_checksum_is_still_caught(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(e for e in manifest["tensors"] if e["dtype"] == "F32")
    entry["dtype"] = "BF16"
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    one_line_failure(["info", out], capsys, out / "manifest.json", "not the base's")


def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing(case, tmp_path, capsys, monkeypatch):
    _, _, base_path, paths = case
    calls = []

    def interrupted(taus):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return taus.sum(0)

    monkeypatch.setattr(maths, "task_sum", interrupted)
    out = tmp_path / "merged.safetensors"
    code, _, err = run(
        ["merge", "task-arithmetic", "--base", base_path, *finetuned_args(paths), "--out", out], capsys
    )
    assert code == 130 and err == "interrupted\n"
    assert not out.exists() and hidden(tmp_path) == []


def test_signals_end_a_real_process_in_one_line(case, tmp_path, capsys):
    """SIGINT or SIGTERM at any moment (here: while Python loads torch): status 130, one line,
    and no output but a complete one (a signal may land after the output was moved into place,
    on a busy machine)."""
    _, _, base_path, paths = case
    merge = ["merge", "average", "--base", str(base_path), "--finetuned", *map(str, paths.values()), "--out"]
    complete = tmp_path / "complete.safetensors"
    assert run([*merge, complete], capsys)[0] == 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / f"merged-{sig}.safetensors"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tallmerge.cli", *merge, str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.8)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # it finished first: fine, and complete
            assert out.exists()
            continue
        assert proc.returncode == 130 and err == "interrupted\n", (proc.returncode, err)
        assert not out.exists() or out.read_bytes() == complete.read_bytes()
        assert hidden(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_an_import_waits_for_the_import(sig, tmp_path, monkeypatch, capsys):
    """A signal that lands while a module is imported must not cross the import (torch's C++
    initialisation aborts the process when it does): the module finishes loading, then the
    command ends as interrupted."""
    (tmp_path / "slow_module_for_signals.py").write_text(
        f"import os, signal, time\nos.kill(os.getpid(), {int(sig)})\ntime.sleep(0.2)\ndone = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reached = []

    def command():
        import slow_module_for_signals

        reached.append(slow_module_for_signals.done)
        time.sleep(5)
        reached.append("slept")

    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as exit:
        exit_on_error(command)
    assert exit.value.code == 130 and capsys.readouterr().err == "interrupted\n"
    assert reached == [True]
    assert signal.getsignal(sig) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    sys.modules.pop("slow_module_for_signals", None)


def test_a_bug_is_one_line_and_debug_shows_the_traceback(case, tmp_path, capsys, monkeypatch):
    _, _, base_path, paths = case

    def broken(taus):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(maths, "task_sum", broken)
    argv = [
        "merge",
        "task-arithmetic",
        "--base",
        base_path,
        *finetuned_args(paths),
        "--out",
        tmp_path / "m.safetensors",
    ]
    err = one_line_failure(
        argv, capsys, "internal error: ZeroDivisionError: oops", "TALLMERGE_DEBUG", status=1
    )
    assert "methods" not in err or "test_nothing_lost.py" in err
    with pytest.raises(ZeroDivisionError):
        main([str(a) for a in ["--debug", *argv]])
    monkeypatch.setenv("TALLMERGE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main([str(a) for a in argv])


# -- 5. info verifies ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["missing", "altered", "truncated"])
def test_info_verifies_every_file(case, tmp_path, capsys, damage):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    code, stdout, _ = run(["info", out], capsys)
    assert code == 0 and "verified" in stdout
    path = out / "vector.safetensors"
    if damage == "missing":
        path.unlink()
    elif damage == "altered":
        data = bytearray(path.read_bytes())
        data[-3] ^= 1
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(path.read_bytes()[:-5])
    one_line_failure(
        ["info", out],
        capsys,
        path,
        {"missing": "missing", "altered": "checksum", "truncated": "bytes"}[damage],
    )


# -- 6. provenance ---------------------------------------------------------------------------------
def test_masks_from_other_checkpoints_or_swapped_names_are_refused(case, tmp_path, capsys):
    base, finetuned, base_path, paths = case
    masks = tmp_path / "masks.safetensors"
    assert (
        run(
            ["masks", "--base", base_path, *finetuned_args(paths), "--lambda", "0.4", "--out", masks], capsys
        )[0]
        == 0
    )
    swapped = {"task0": paths["task1"], "task1": paths["task0"], "task2": paths["task2"]}
    other = tmp_path / "other"
    other.mkdir()
    retrained = {k: v.clone() for k, v in finetuned[2].items()}
    retrained["blocks.0.attn.bias"][0] += 0.5
    save_file(retrained, other / "task2.safetensors")
    elsewhere = {**paths, "task2": other / "task2.safetensors"}
    for given, task in ((swapped, "task0"), (elsewhere, "task2")):
        for argv in (
            ["merge", "consensus-ta", "--base", base_path, *finetuned_args(given), "--masks", masks],
            ["compress", "--base", base_path, *finetuned_args(given), "--masks", masks],
        ):
            out = tmp_path / "out"
            one_line_failure([*argv, "--out", out], capsys, masks, f"task '{task}'", "another checkpoint")
            assert not out.exists()
    # the same weights saved again (other metadata) are the same checkpoint
    resaved = tmp_path / "resaved.safetensors"
    save_file(load_file(paths["task2"]), resaved, metadata={"note": "copied"})
    assert (
        run(
            [
                "merge",
                "consensus-ta",
                "--base",
                base_path,
                *finetuned_args({**paths, "task2": resaved}),
                "--masks",
                masks,
                "--out",
                tmp_path / "c.safetensors",
            ],
            capsys,
        )[0]
        == 0
    )


def test_store_records_the_fingerprints_of_its_checkpoints(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    sources = json.loads((out / "manifest.json").read_text())["sources"]
    assert set(sources["tasks"]) == set(paths) and len(set(sources["tasks"].values())) == 3
    from tallmerge.formats.tensorfile import TensorFile

    with TensorFile(paths["task1"]) as f:
        assert sources["tasks"]["task1"] == f.fingerprint()


def test_a_folder_given_as_a_checkpoint_is_named_as_a_folder(case, tmp_path, capsys):
    _, _, base_path, paths = case
    (tmp_path / "ckpt.safetensors").mkdir()
    one_line_failure(
        [
            "merge",
            "average",
            "--base",
            base_path,
            "--finetuned",
            f"a={tmp_path / 'ckpt.safetensors'}",
            f"b={paths['task0']}",
            "--out",
            tmp_path / "m.safetensors",
        ],
        capsys,
        "ckpt.safetensors",
        "is a folder",
    )


# -- 7. no litter, no races ------------------------------------------------------------------------
def _killed_writer(folder: Path, target: str) -> None:
    """A real process that starts writing ``folder/target`` and is killed with SIGKILL."""
    code = (
        "import os, signal, sys; from tallmerge.formats.files import atomic_write, temporary_dir\n"
        f"with temporary_dir({str(folder / target)!r}) as d, atomic_write({str(folder / (target + '.x'))!r}) as f:\n"
        "    (d / 'base.safetensors').write_bytes(b'0' * 100000); f.write_bytes(b'1' * 100000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL


def test_temporaries_of_killed_runs_are_cleaned_by_the_next_run(case, tmp_path, capsys):
    from tallmerge.formats.files import _HOST

    _, _, base_path, paths = case
    _killed_writer(tmp_path, "store")
    assert len(hidden(tmp_path)) == 2  # a folder and a file, both named after the dead process
    mine = tmp_path / f".x.tallmerge-{_HOST}-{os.getpid()}-0.tmp"
    mine.write_text("a live process's temporary")
    assert run(compress_args(base_path, paths, tmp_path / "store"), capsys)[0] == 0
    assert hidden(tmp_path) == [mine.name]  # the live one stays
    mine.unlink()


def test_a_store_set_aside_by_a_killed_run_comes_back(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    before = snapshot(out)
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(proc.stdout)
    from tallmerge.formats.files import _HOST

    aside = tmp_path / f".store.tallmerge-{_HOST}-{dead}-abcd.old"
    os.rename(out, aside)  # as if killed between moving the old store aside and the new one in
    assert clean_stale_temporaries(tmp_path) == [aside]
    assert snapshot(out) == before and hidden(tmp_path) == []


def test_a_failed_import_leaves_no_output_folder(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    out = tmp_path / "new" / "imported"
    one_line_failure(["import", "--arch", "pocket-vit", bad, "--out", out], capsys, bad)
    assert not (tmp_path / "new").exists()


def test_a_second_writer_to_the_same_out_fails_clearly(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    run(compress_args(base_path, paths, out), capsys)
    before = snapshot(out)
    with output_lock(tmp_path / "." / "store"):  # another spelling of the same path
        one_line_failure(
            compress_args(base_path, paths, out, "--vector-dtype", "bf16"),
            capsys,
            out,
            "another tallmerge process",
            f"pid {os.getpid()}",
        )
        assert snapshot(out) == before
    assert run(compress_args(base_path, paths, out, "--vector-dtype", "bf16"), capsys)[0] == 0


def test_concurrent_compress_runs_never_break_the_store(case, tmp_path):
    _, _, base_path, paths = case
    out = tmp_path / "store"
    argv = [sys.executable, "-m", "tallmerge.cli", *map(str, compress_args(base_path, paths, out))]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or (code == 2 and "another tallmerge process" in err and err.count("\n") == 1), (
            results
        )
    assert (
        subprocess.run(
            [sys.executable, "-m", "tallmerge.cli", "info", str(out)], capture_output=True
        ).returncode
        == 0
    )
    assert hidden(tmp_path) == []
