"""The regime study's bookkeeping (study/regime.py): candidates apply to params.yaml, and the
table ranks eligible candidates by distance without touching the selection rule above it."""

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "study"))
import regime  # noqa: E402


def test_every_candidate_sets_existing_params_keys():
    for name, candidate in regime.load_candidates().items():
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        applied = regime.apply(params, candidate["set"])
        for dotted, value in candidate["set"].items():
            node = applied
            for key in dotted.split("."):
                node = node[key]
            assert node == value, (name, dotted)
        assert candidate["why"].strip(), name


def test_an_unknown_key_is_refused():
    with pytest.raises(SystemExit, match="'finetune.lrr' is not a key"):
        regime.apply(yaml.safe_load((ROOT / "params.yaml").read_text()), {"finetune.lrr": 1e-4})


def _record(name, distance, eligible, tall=99.0):
    outcome = {"avg_normalized_val": tall, "avg_normalized_test": tall}
    base = {
        "avg_top1_val": 50.0,
        "avg_top1_test": 50.0,
        "avg_normalized_val": 70.0,
        "avg_normalized_test": 70.0,
    }
    return {
        "candidate": name,
        "why": f"because {name}",
        "set": {"finetune.lr": 1e-4},
        "minutes": 20.0,
        "indicators_val": {"zeroshot": 45.0, "finetuned": 90.0, "task-arithmetic": 70.0, "ties": 72.0},
        "distance": distance,
        "gates": {"repro <= 30 min": eligible},
        "eligible": eligible,
        "baselines": {m: base for m in ("zeroshot", "finetuned", "task-arithmetic", "ties")},
        "outcomes_never_used_to_choose": {m: outcome for m in regime.OUTCOMES},
    }


def test_table_ranks_eligible_candidates_first_and_keeps_the_rule(tmp_path, monkeypatch):
    results, report = tmp_path / "regime", tmp_path / "regime.md"
    results.mkdir()
    for record in (_record("far", 20.0, True), _record("near", 5.0, True), _record("slow", 1.0, False)):
        (results / f"{record['candidate']}.json").write_text(json.dumps(record))
    report.write_text("# rule\n\nnever edited\n")
    monkeypatch.setattr(regime, "RESULTS", results)
    monkeypatch.setattr(regime, "REPORT", report)
    regime.write_table()
    regime.write_table()  # idempotent: the table is replaced, not appended
    text = report.read_text()
    assert text.startswith("# rule\n\nnever edited\n") and text.count(regime.MARKER) == 1
    rows = [
        line.split("|")[1].strip()
        for line in text.splitlines()
        if line.startswith("| ") and "candidate" not in line
    ]
    assert rows == ["near", "far", "slow"]
    assert "no: repro <= 30 min" in text
