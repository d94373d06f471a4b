"""The task-count study's bookkeeping (study/scaling.py): the benchmark grows from the default
tasks, and the table reads the committed 8-task run beside each recorded larger one."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "study"))
import scaling  # noqa: E402


def test_benchmark_keeps_the_default_tasks_first_and_their_overrides():
    default = {"textures": {"lr": 0.1}, "digits": {}}
    grown = scaling.benchmark(default, 5)
    assert list(grown)[:2] == ["textures", "digits"] and grown["textures"] == {"lr": 0.1}
    assert len(grown) == 5 and len(set(grown)) == 5
    assert "shapes" in scaling.benchmark(default, 14)  # the whole 14-task registry
    with pytest.raises(SystemExit, match="between 2 and 14"):
        scaling.benchmark(default, 15)


def _summary(ta, consensus):
    row = {"avg_top1_test": 60.0, "avg_normalized_test": 80.0}
    summary = {m: dict(row) for m in scaling.METHODS}
    summary["task-arithmetic"]["avg_normalized_test"] = ta
    summary["consensus-ta"]["avg_normalized_test"] = consensus
    summary["task-arithmetic"]["alpha"] = 0.3
    return summary


def test_table_puts_the_committed_run_beside_recorded_ones(tmp_path, monkeypatch):
    root, results = tmp_path, tmp_path / "scaling"
    (root / "metrics").mkdir()
    results.mkdir()
    (root / "metrics" / "summary.json").write_text(json.dumps(_summary(70.0, 72.5)))
    (root / "params.yaml").write_text("tasks: {a: {}, b: {}}\n")
    bigger = scaling.record(_summary(60.0, 65.0), ["a", "b", "c"], 12.5, {"prepare": 1.0}, "abc")
    (results / "3.json").write_text(json.dumps(bigger))
    report = root / "scaling.md"
    report.write_text("# why\n\nkept\n")
    monkeypatch.setattr(scaling, "ROOT", root)
    monkeypatch.setattr(scaling, "RESULTS", results)
    monkeypatch.setattr(scaling, "REPORT", report)
    scaling.write_table()
    scaling.write_table()
    text = report.read_text()
    assert text.startswith("# why\n\nkept\n") and text.count(scaling.MARKER) == 1
    assert "| pocket T = 2 | pocket T = 3 |" in text
    assert "| **Consensus TA - TA** | **+2.5** | **+5.0** | +4.2 / +5.0 / +4.8 |" in text
    assert "T = 3 (12.5 min on 2 cores, shared stages restored): a, b, c" in text
