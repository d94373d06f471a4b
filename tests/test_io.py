import pytest
import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import atomic_write, load_tensors, read_json, save_tensors, write_json


def test_save_load_roundtrip_keeps_dtypes_and_metadata(tmp_path):
    tensors = {"w": torch.randn(3, 4), "i": torch.arange(5), "b": torch.ones(2, dtype=torch.uint8)}
    save_tensors(tensors, tmp_path / "x.safetensors", metadata={"arch": "pocket-vit", "n": 3})
    loaded, metadata = load_tensors(tmp_path / "x.safetensors")
    assert metadata == {"arch": "pocket-vit", "n": 3}
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)


def test_truncated_file_gives_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors({"w": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TallmergeError, match="x.safetensors") as err:
        load_tensors(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xff" * 16, b"{}"])
def test_corrupted_file_is_rejected(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(TallmergeError, match="bad.safetensors"):
        load_tensors(path)


def test_missing_file(tmp_path):
    with pytest.raises(TallmergeError, match="file not found"):
        load_tensors(tmp_path / "nope.safetensors")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError("interrupted")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_identical_checkpoints_are_byte_identical_across_processes(tmp_path):
    """safetensors orders a multi-key metadata map randomly per process; ours must not vary."""
    import subprocess
    import sys

    script = (
        "import sys, torch; from tallmerge.formats.files import save_tensors; "
        "save_tensors({'w': torch.arange(4.0)}, sys.argv[1], {'arch': 'a', 'part': 'p', 'task': 't', 'x': [1]})"
    )
    outputs = []
    for i in range(4):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{i}.safetensors")], check=True)
        outputs.append((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(set(outputs)) == 1
    assert load_tensors(tmp_path / "0.safetensors")[1] == {"arch": "a", "part": "p", "task": "t", "x": [1]}


def test_spooled_tensors_are_plain_safetensors(tmp_path):
    from safetensors.torch import load_file

    from tallmerge.formats.tensorfile import TensorFile, spool_tensors

    tensors = {
        "words": torch.arange(7).to(torch.uint32),
        "probs": torch.tensor([[1, 65535]], dtype=torch.uint16),
        "empty": torch.zeros(0, 3),
        "w": torch.randn(2, 3).to(torch.bfloat16),
    }
    with spool_tensors(tmp_path / "s.safetensors", {"format": "x"}) as put:
        for key, value in tensors.items():
            put(key, value)
    loaded = load_file(tmp_path / "s.safetensors")
    assert all(
        loaded[k].dtype == v.dtype and torch.equal(loaded[k].double(), v.double()) for k, v in tensors.items()
    )
    with TensorFile(tmp_path / "s.safetensors") as f:
        assert f.keys == list(tensors) and f.metadata == {"format": "x"}
        assert f.get("words").tolist() == list(range(7))
    with pytest.raises(KeyboardInterrupt), spool_tensors(tmp_path / "t.safetensors") as put:
        put("a", torch.ones(3))
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]
