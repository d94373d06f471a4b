import os

import pytest
import torch

# Deterministic, small, quiet: tests run on 2 CPU cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run a test inside an empty temporary folder (stage scripts use relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
