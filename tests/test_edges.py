"""Nothing lost at the edges: a full disk, a special file as --out, `reconstruct --all` all or
nothing, and an output stream that cannot be written. Each ends in one line naming the file or
the stream, exit 2, what was there before unchanged, and no temporaries or empty folders."""

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import save_file

from helpers import finetuned_args, make_case, run, save_case
from test_nothing_lost import compress_args, hidden, one_line_failure, snapshot


@pytest.fixture
def case(tmp_path):
    base, finetuned = make_case(seed=23, tasks=3, dyadic=False)
    (tmp_path / "inputs").mkdir()
    base_path, paths = save_case(tmp_path / "inputs", base, finetuned)
    return base_path, paths


# -- a full disk ------------------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A real, full filesystem (a 256 KiB tmpfs holding a prior output), or a skip."""
    mount = tmp_path / "full"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command to make a small filesystem")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
    try:
        (mount / "prior.safetensors").write_bytes(b"an earlier output, kept as it is")
        with open(
            mount / "filler", "wb", buffering=0
        ) as f:  # every block taken: a new file opens, its writes fail
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _is_untouched(mount: Path, before: dict) -> None:
    assert snapshot(mount) == before
    assert not hidden(mount), hidden(mount)


@pytest.mark.parametrize("command", ["merge", "masks", "compress", "reconstruct", "import"])
def test_a_full_disk_names_the_output(case, tmp_path, capsys, full_disk, command):
    base_path, paths = case
    target = full_disk / "prior.safetensors"
    if command == "merge":
        argv = ["merge", "ties", "--base", base_path, *finetuned_args(paths), "--out", target]
    elif command == "masks":
        argv = [
            "masks",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--lambda",
            "0.2",
            "0.4",
            "--out",
            target,
        ]
    elif command == "compress":
        target = full_disk / "store"
        argv = compress_args(base_path, paths, target)
    elif command == "reconstruct":
        store = tmp_path / "store"
        assert run(compress_args(base_path, paths, store), capsys)[0] == 0
        argv = ["reconstruct", store, "--task", "task0", "--out", target]
    else:
        from tallmerge.clip.models import create_clip

        visual = {k: v.contiguous() for k, v in create_clip("pocket-vit", seed=1).visual.state_dict().items()}
        save_file(visual, tmp_path / "prior.safetensors")
        argv = ["import", "--arch", "pocket-vit", tmp_path / "prior.safetensors", "--out", full_disk]
    before = snapshot(full_disk)
    line = one_line_failure(argv, capsys, target, "No space left on device")
    assert "internal error" not in line
    _is_untouched(full_disk, before)


# -- a special file as --out ----------------------------------------------------------------------
def _special(kind: str, path: Path):
    if kind == "fifo":
        os.mkfifo(path)
        return None
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return sock
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs root")
    return None


@pytest.mark.parametrize(
    "kind,word", [("device", "character device"), ("fifo", "FIFO"), ("socket", "socket")]
)
@pytest.mark.parametrize("command", ["merge", "masks", "reconstruct", "import"])
def test_a_special_file_as_out_is_refused_and_left_alone(case, tmp_path, capsys, kind, word, command):
    base_path, paths = case
    node = tmp_path / ("out" if command != "import" else "task.safetensors")
    keep = _special(kind, node)
    try:
        before = os.lstat(node)
        if command == "merge":
            argv = ["merge", "ties", "--base", base_path, *finetuned_args(paths), "--out", node]
        elif command == "masks":
            argv = ["masks", "--base", base_path, *finetuned_args(paths), "--lambda", "0.4", "--out", node]
        elif command == "reconstruct":
            argv = ["reconstruct", tmp_path / "no-store", "--task", "task0", "--out", node]
        else:
            argv = ["import", "--arch", "pocket-vit", f"task={base_path}", "--out", tmp_path]
        one_line_failure(argv, capsys, node, word)
        after = os.lstat(node)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
        assert not hidden(tmp_path)
    finally:
        if keep is not None:
            keep.close()


# -- reconstruct --all: all or nothing -------------------------------------------------------------
@pytest.fixture
def store(case, tmp_path, capsys):
    base_path, paths = case
    out = tmp_path / "store"
    assert run(compress_args(base_path, paths, out), capsys)[0] == 0
    return out


def test_reconstruct_all_refuses_a_name_taken_by_a_folder_before_writing_anything(store, tmp_path, capsys):
    out = tmp_path / "rebuilt"
    out.mkdir()
    (out / "task0.safetensors").write_bytes(b"an earlier file")
    (out / "task2.safetensors").mkdir()  # a user's folder where the last task would go
    before = snapshot(out)
    one_line_failure(["reconstruct", store, "--all", "--out", out], capsys, "task2.safetensors", "folder")
    assert snapshot(out) == before and not hidden(out)


def test_a_refused_reconstruct_all_leaves_no_folder(store, tmp_path, capsys):
    (store / "masks.safetensors").unlink()
    out = tmp_path / "new" / "rebuilt"
    one_line_failure(["reconstruct", store, "--all", "--out", out], capsys, "masks.safetensors", "missing")
    assert not (tmp_path / "new").exists()


def test_reconstruct_all_into_a_new_folder_appears_whole(store, tmp_path, capsys, monkeypatch):
    """A failure after some tasks are written leaves no folder at all; a run that completes
    leaves every task's file and nothing else."""
    from tallmerge.formats import tensorfile
    from tallmerge.store import reader

    out = tmp_path / "rebuilt"
    real = tensorfile.write_tensors
    opened = []

    def fails_on_the_last(path, *args, **kwargs):
        opened.append(path)
        if len(opened) == 3:
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(reader, "write_tensors", fails_on_the_last)
    one_line_failure(["reconstruct", store, "--all", "--out", out], capsys, "rebuilt", "No space left")
    assert not out.exists() and not hidden(tmp_path)
    monkeypatch.setattr(reader, "write_tensors", real)
    assert run(["reconstruct", store, "--all", "--out", out], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [f"task{t}.safetensors" for t in range(3)]


# -- standard output --------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_standard_output_is_named_as_such():
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "tallmerge.cli", "tasks"], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: standard output: No space left on device"), done.stderr
