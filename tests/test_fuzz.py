"""Fuzzing every input format through the command line (hypothesis): random mutations of
safetensors headers, store manifests, mask files and pickled checkpoints.

The property, for every mutated input: the command either fails with status 2 and one line
that names the mutated file, or succeeds with exactly the output that the input, as it now
stands, calls for; never a traceback; the inputs are left as they were; no temporaries remain.
"Exactly the output" is checked against an independent reader: the reference ``safetensors``
library for checkpoints, the unmutated run for our own formats (whose mutations must all be
detected, or be edits that change nothing, such as JSON whitespace). A pickle carries no
checksum, so a mutated one may still be a valid state dict: there the output must be a
well-formed image encoder of the architecture.

The example counts below keep the whole file near a minute on 2 cores; raise them with
``TALLMERGE_FUZZ_SCALE=10`` for a longer hunt.
"""

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from safetensors.torch import load_file, save_file

from helpers import make_case, save_case
from reference import ref_merge
from tallmerge.cli import main

SCALE = float(os.environ.get("TALLMERGE_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


# -- mutations -------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def mutate_json(doc, data):
    """One structural edit somewhere in ``doc`` (in place): replace a value, delete or rename a
    key, drop or duplicate a list item, or add a key."""
    node, depth = doc, data.draw(st.integers(0, 4), label="depth")
    for _ in range(depth):
        children = (
            list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        )
        children = [c for c in children if isinstance(node[c], (dict, list)) and node[c]]
        if not children:
            break
        node = node[data.draw(st.sampled_from(children), label="path")]
    if not isinstance(node, (dict, list)) or not node:
        return
    where = data.draw(
        st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))), label="at"
    )
    action = data.draw(st.sampled_from(["replace", "delete", "rename", "duplicate", "add"]), label="action")
    if action == "replace":
        node[where] = data.draw(JSON_VALUES, label="value")
    elif action == "delete":
        del node[where]
    elif action == "rename" and isinstance(node, dict):
        node[data.draw(st.text(max_size=8), label="name")] = node.pop(where)
    elif action == "duplicate" and isinstance(node, list):
        node.insert(where, json.loads(json.dumps(node[where])))
    elif action == "add" and isinstance(node, dict):
        node[data.draw(st.text(max_size=8), label="name")] = data.draw(JSON_VALUES, label="value")


def mutate_bytes(raw: bytes, data, start: int = 0, end: int | None = None) -> bytes:
    """Flip, insert or delete a few bytes in ``raw[start:end]``, or cut the file short."""
    end = len(raw) if end is None else end
    out = bytearray(raw)
    kind = data.draw(st.sampled_from(["flip", "flip", "insert", "delete", "truncate"]), label="bytes")
    if kind == "truncate":
        return bytes(out[: data.draw(st.integers(0, len(out) - 1), label="cut")])
    for _ in range(data.draw(st.integers(1, 3), label="count")):
        at = data.draw(st.integers(start, max(start, min(end, len(out)) - 1)), label="pos")
        if kind == "flip":
            out[at] ^= data.draw(st.integers(1, 255), label="xor")
        elif kind == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=4), label="ins")
        elif len(out) > 1:
            del out[at]
    return bytes(out)


def safetensors_parts(raw: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def safetensors_bytes(header: dict, body: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + body


def mutate_safetensors(raw: bytes, data) -> bytes:
    """A structural edit of the JSON header, or byte edits within the header."""
    if data.draw(st.booleans(), label="structured"):
        header, body = safetensors_parts(raw)
        mutate_json(header, data)
        return safetensors_bytes(header, body)
    return mutate_bytes(raw, data, 0, 8 + int.from_bytes(raw[:8], "little"))


# -- running the CLI -------------------------------------------------------------------------------
def digest(path: Path) -> str:
    if path.is_dir():
        return json.dumps({p.name: digest(p) for p in sorted(path.iterdir())})
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(argv, mutated: Path, inputs: list[Path]) -> tuple[int, str]:
    """Run the command in-process; check the properties that hold whatever the outcome."""
    before = {p: digest(p) for p in inputs}
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main([str(a) for a in argv])
            status = 0
        except SystemExit as e:
            status = e.code
    err = stderr.getvalue()
    with contextlib.suppress(InvalidArgument):  # the fixtures run it outside any example
        event(f"exit status {status}")
    assert "Traceback" not in err and "internal error" not in err, err
    assert status in (0, 2), (status, err)
    if status == 2:
        assert err.count("\n") == 1 and str(mutated) in err, err
    assert {p: digest(p) for p in inputs} == before, "an input changed"
    for folder in {p.parent for p in inputs}:
        assert not [p for p in folder.iterdir() if ".tallmerge-" in p.name], "a temporary was left"
    return status, stdout.getvalue()


def fresh(folder: Path, suffix: str = "") -> Path:
    return folder / f"{uuid.uuid4().hex[:12]}{suffix}"


# -- safetensors headers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    base, finetuned = make_case(seed=3, tasks=2)  # dyadic values: the merge is exact in any order
    base_path, paths = save_case(folder, base, finetuned)
    for path, state in zip([base_path, *paths.values()], [base, *finetuned]):  # with metadata to mutate too
        save_file(state, path, metadata={"format": "pt", "note": "fine-tuned"})
    return folder, base, finetuned, base_path, paths


@fuzz(150)
@given(data=st.data())
def test_mutated_safetensors_headers(checkpoints, data):
    folder, base, finetuned, base_path, paths = checkpoints
    mutated = fresh(folder, ".safetensors")
    mutated.write_bytes(mutate_safetensors(paths["task0"].read_bytes(), data))
    out = fresh(folder, ".safetensors")
    as_base = data.draw(st.booleans(), label="as_base")
    given_base = mutated if as_base else base_path
    argv = [
        "merge",
        "task-arithmetic",
        "--base",
        given_base,
        "--finetuned",
        f"a={paths['task1']}",
        f"b={base_path if as_base else mutated}",
        "--alpha",
        "0.5",
        "--out",
        out,
    ]
    status, _ = cli(argv, mutated, [base_path, paths["task1"], mutated])
    if status == 0:  # then the reference library reads the file, and the merge is of what it reads
        read = load_file(mutated)
        expected = ref_merge(
            "task-arithmetic", read if as_base else base, [finetuned[1], base if as_base else read], alpha=0.5
        )
        merged = load_file(out)
        assert merged.keys() == expected.keys()
        assert all(torch.equal(merged[k], v) for k, v in expected.items())
        out.unlink()
    else:
        assert not out.exists()
    mutated.unlink()


def same_description(a: str, b: str) -> bool:
    def keep(text):
        return [line for line in text.splitlines() if not line.startswith(("manifest ", "total "))]

    return keep(a) == keep(b)


# -- store manifests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine_store(checkpoints):
    folder, _, _, base_path, paths = checkpoints
    built = folder / "pristine-store"
    argv = [
        "compress",
        "--base",
        base_path,
        "--finetuned",
        *map(str, paths.values()),
        "--lambda",
        "0.4",
        "--out",
        built,
    ]
    assert cli(argv, built, [base_path])[0] == 0
    rebuilt = folder / "pristine-task1.safetensors"
    assert cli(["reconstruct", built, "--task", "task1", "--out", rebuilt], built, [built])[0] == 0
    _, info = cli(["info", built], built, [built])
    return built, load_file(rebuilt), info


@fuzz(150)
@given(data=st.data())
def test_mutated_store_manifests(checkpoints, pristine_store, data):
    folder = checkpoints[0]
    built, expected, info = pristine_store
    copy = fresh(folder)
    shutil.copytree(built, copy)
    manifest = copy / "manifest.json"
    if data.draw(st.booleans(), label="structured"):
        doc = json.loads(manifest.read_text())
        mutate_json(doc, data)
        manifest.write_text(json.dumps(doc, indent=data.draw(st.sampled_from([None, 1, 2]), label="indent")))
    else:
        manifest.write_bytes(mutate_bytes(manifest.read_bytes(), data))
    status, stdout = cli(["info", copy], manifest, [copy])
    if status == 0:  # the same store, described alike (but for the manifest's own size)
        assert same_description(stdout, info.replace(str(built), str(copy)))
    out = fresh(folder, ".safetensors")
    status, _ = cli(["reconstruct", copy, "--task", "task1", "--out", out], manifest, [copy])
    if status == 0:
        rebuilt = load_file(out)
        assert rebuilt.keys() == expected.keys() and all(
            torch.equal(rebuilt[k], v) for k, v in expected.items()
        )
        out.unlink()
    else:
        assert not out.exists()
    shutil.rmtree(copy)


# -- mask files ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine_masks(checkpoints):
    folder, _, _, base_path, paths = checkpoints
    masks = folder / "pristine-masks.safetensors"
    finetuned = ["--finetuned", *[f"{k}={v}" for k, v in paths.items()]]
    assert (
        cli(
            ["masks", "--base", base_path, *finetuned, "--lambda", "0.4", "--out", masks], masks, [base_path]
        )[0]
        == 0
    )
    merged = folder / "pristine-consensus.safetensors"
    argv = [
        "merge",
        "consensus-ta",
        "--base",
        base_path,
        *finetuned,
        "--masks",
        masks,
        "--k",
        "1",
        "--out",
        merged,
    ]
    assert cli(argv, masks, [masks])[0] == 0
    return masks, finetuned, load_file(merged)


@fuzz(120)
@given(data=st.data())
def test_mutated_mask_files(checkpoints, pristine_masks, data):
    folder, _, _, base_path, _ = checkpoints
    masks, finetuned, expected = pristine_masks
    mutated = fresh(folder, ".safetensors")
    raw = masks.read_bytes()
    if data.draw(st.booleans(), label="header"):
        mutated.write_bytes(mutate_safetensors(raw, data))
    else:  # the bits themselves, and the checksum at the end
        mutated.write_bytes(mutate_bytes(raw, data, 8 + int.from_bytes(raw[:8], "little")))
    out = fresh(folder, ".safetensors")
    argv = [
        "merge",
        "consensus-ta",
        "--base",
        base_path,
        *finetuned,
        "--masks",
        mutated,
        "--k",
        "1",
        "--out",
        out,
    ]
    status, _ = cli(argv, mutated, [mutated])
    if status == 0:
        merged = load_file(out)
        assert merged.keys() == expected.keys() and all(
            torch.equal(merged[k], v) for k, v in expected.items()
        )
        out.unlink()
    else:
        assert not out.exists()
    mutated.unlink()


# -- pickled checkpoints ---------------------------------------------------------------------------
ENCODER_MODULE = "fuzz_pickled_encoder"
ENCODER_SOURCE = """
import torch
import tallmerge.clip.models


class ImageEncoder(torch.nn.Module):  # as the task-vectors code pickles a fine-tuned encoder
    def __init__(self, visual):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.visual = visual
        self.note = {"epochs": 3}
"""


@pytest.fixture(scope="module")
def pickled(tmp_path_factory):
    """A pickled ImageEncoder module (its class no longer importable) and the expected keys."""
    from tallmerge.clip.models import create_clip

    folder = tmp_path_factory.mktemp("pickles")
    (folder / f"{ENCODER_MODULE}.py").write_text(ENCODER_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(ENCODER_MODULE)
        visual = create_clip("pocket-vit", seed=2).visual
        path = folder / "encoder.pt"
        torch.save(module.ImageEncoder(visual), path)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(ENCODER_MODULE, None)
        (folder / f"{ENCODER_MODULE}.py").unlink()
    shapes = {k: tuple(v.shape) for k, v in visual.state_dict().items()}
    return folder, path, shapes


@fuzz(120)
@given(data=st.data())
def test_mutated_pickles(pickled, data):
    folder, path, shapes = pickled
    mutated = fresh(folder, ".pt")
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    pkl = next(n for n in members if n.endswith("/data.pkl"))
    if data.draw(st.booleans(), label="inside"):  # a mutated pickle in a well-formed archive
        members[pkl] = mutate_bytes(members[pkl], data)
        with zipfile.ZipFile(mutated, "w", zipfile.ZIP_STORED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)
    else:  # the archive itself
        mutated.write_bytes(mutate_bytes(path.read_bytes(), data))
    out = fresh(folder)
    status, _ = cli(
        ["import", "--arch", "pocket-vit", f"enc={mutated}", "--out", out], mutated, [mutated, path]
    )
    if status == 0:
        imported = load_file(out / "enc.safetensors")
        assert {k: tuple(v.shape) for k, v in imported.items()} == shapes
        shutil.rmtree(out)
    else:
        assert not out.exists()
    mutated.unlink()
