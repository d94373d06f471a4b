"""End to end: the real dvc.yaml on a tiny params.yaml, in a throwaway git repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = {
    "tasks": {"colors": {}, "shapes": {}},
    "data": {"train": 160, "val": 40, "test": 40},
    "pretrain": {
        "images": 800,
        "web_variety": 0.25,
        "steps": 12,
        "batch_size": 64,
        "lr": 0.001,
        "weight_decay": 0.1,
        "warmup": 2,
    },
    "finetune": {"steps": 8, "batch_size": 32, "lr": 0.001, "weight_decay": 0.1, "warmup": 1},
    "lambda": [0.3, 0.5],
}
# two yes / no tasks of the 7 NLP suite: never 0 % on validation, however little trained
TEXT_TASKS = ["paraphrase-id", "pronoun-ref"]
TINY_TEXT = {
    "tasks": {t: {} for t in TEXT_TASKS},
    "suites": ["nlp7"],
    "data": {"train": 64, "val": 16, "test": 16, "root": None},
    "pretrain": {"texts": 400, "steps": 6, "batch_size": 16, "lr": 0.002, "weight_decay": 0.01, "warmup": 1},
    "finetune": {"steps": 4, "batch_size": 16, "lr": 0.001, "weight_decay": 0.01, "warmup": 1},
}
GRID = [0.0, 0.5, 1.0]

pytestmark = pytest.mark.slow


def run(cmd, cwd, check=True):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("project")
    for item in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / item)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(TINY)
    # a subset of the registry, as a user who deletes entries: one later method in each role
    params["merge"] = {m: params["merge"][m] for m in MERGES}
    params["mtv"] = {m: params["mtv"][m] for m in MTVS}
    params["compress"]["mtv"] = "tsv-m"
    params["compress"]["vector_dtype"] = ["fp32", "bf16", "int4"]
    for method in MERGES[1:]:
        params["merge"][method]["alpha"] = GRID
    params["consensus"]["alpha"] = GRID
    params["text"].update(TINY_TEXT)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git init -q && git add -A && git commit -qm init", repo)
    run("dvc repro", repo)
    return repo


MERGES = ["average", "task-arithmetic", "ties", "iso-cts"]
MTVS = ["ta", "tsv-m"]
METHODS = {
    "zeroshot",
    "finetuned",
    *MERGES,
    *(f"consensus-{m}" for m in MTVS),
    *(f"tall-{m}" for m in MTVS),
    "magnitude-masking",
    "magnitude-pruning",
}
MASK_STAGES = {f"{stage}@{m}" for stage in ("tall", "consensus") for m in MTVS} | {
    "compress",
    "report",
}
TEXT_MASK_STAGES = {f"text-{stage}@nlp7-{m}" for stage in ("tall", "consensus") for m in MTVS} | {
    "text-compress@nlp7"
}


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_repro_writes_the_metrics_contract(repo):
    frame = pd.read_csv(repo / "metrics" / "accuracy.csv")
    assert list(frame.columns) == ["method", "task", "split", "top1"]
    assert set(frame.method) == METHODS
    assert set(frame.task) == {"colors", "shapes"} and set(frame.split) == {"val", "test"}
    assert len(frame) == len(METHODS) * 2 * 2 and frame.top1.between(0, 100).all()
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary) == METHODS | {"compression"}
    assert summary["finetuned"]["avg_normalized_test"] == 100.0
    for method in METHODS:
        assert {"avg_top1_test", "avg_normalized_test", "avg_top1_val"} <= set(summary[method])
    assert summary["average"]["alpha"] == 0.5  # 1/T
    for method in ("task-arithmetic", "ties", "iso-cts", "consensus-ta", "consensus-tsv-m"):
        assert summary[method]["alpha"] in GRID
    for method in ("tall-ta", "tall-tsv-m"):
        assert set(summary[method]["lambda"]) == {"colors", "shapes"}
        assert set(summary[method]["lambda"].values()) <= {0.3, 0.5}
    for path in (
        "models/pretrained/visual.safetensors",
        "models/finetuned/colors.safetensors",
        "models/heads/shapes.safetensors",
        "data/tasks/colors.safetensors",
        "models/masks/ta.safetensors",
        "models/masks/tall-tsv-m.safetensors",
        "models/merged/iso-cts.safetensors",
        "models/merged/consensus-ta.safetensors",
        "models/merged/average.safetensors",
        "plots/alpha.csv",
        "plots/overlap.csv",
        "plots/methods.csv",
        "plots/lambda/colors.csv",
        "plots/storage.csv",
        "models/store/manifest.json",
        "reports/results.md",
        "metrics/schemes.json",
        "reports/figures/frontier.png",
        "reports/figures/alpha.png",
        "reports/figures/lambda.png",
    ):
        assert (repo / path).is_file(), path
    overlap = pd.read_csv(repo / "plots" / "overlap.csv")
    assert list(overlap.tasks) == [0, 1, 2] and abs(overlap.ta.sum() - 100) < 0.1
    assert list(overlap.columns) == ["tasks", "ta", "ties", "tsv-m", "iso-c", "iso-cts"]  # the registry's
    assert overlap["tsv-m"].notna().all() and overlap["ties"].isna().all()  # empty where not run
    report = (repo / "reports" / "results.md").read_text()
    for row in ("| TALL mask + TA |", "| TALL mask + TSV-M |", "| Iso-CTS |", "| Consensus TSV-M |"):
        assert row in report, row
    assert "| TIES |" in report and "Consensus TIES" not in report
    assert "![storage vs accuracy](figures/frontier.png)" in report and "store: tsv-c fp32" in report
    schemes = json.loads((repo / "metrics" / "schemes.json").read_text())["stores"]
    assert set(schemes) == {f"emr {d}" for d in ("fp32", "bf16", "int4")} | {"tsv-c fp32", "tsv-c bf16"}
    storage = pd.read_csv(repo / "plots" / "storage.csv")
    assert {"store: emr int4", "store: tsv-c bf16", "one model: Iso-CTS"} <= set(storage.storage)


def test_compress_stage_keeps_a_store_that_rebuilds_the_tall_models(repo):
    summary = json.loads((repo / "metrics" / "summary.json").read_text())["compression"]
    assert summary["mtv"] == "tsv-m" and summary["vector_dtype"] in {"fp32", "bf16", "int4"}
    sizes = summary["bytes"]
    assert (
        sizes["total"]
        == sizes["base"] + sizes["vector"] + sizes["masks"] + sizes["manifest"]
        < sizes["finetuned"]
    )
    assert 0 < summary["bits_per_weight"]["mask"] < 1 and 0 < summary["bits_per_weight"]["vector"] <= 32.1
    assert 3.63 < summary["projected_gbit_vit_b32_20tasks"] < 3.63 + 0.0879 * (32.1 + 20)
    overhead = summary["projected_overhead_gbit_vit_b32_20tasks"]
    assert overhead == pytest.approx(summary["projected_gbit_vit_b32_20tasks"] - 3.630, abs=2e-3)
    compression = json.loads((repo / "metrics" / "compression.json").read_text())
    # the fp32 store rebuilds exactly the TALL + TSV-M models, so their accuracy is the same
    frame = pd.read_csv(repo / "metrics" / "accuracy.csv")
    tall = frame[frame.method == "tall-tsv-m"].drop(columns="method").to_dict("records")
    assert compression["stores"]["tall-tsv-m fp32"]["accuracy"] == tall
    storage = pd.read_csv(repo / "plots" / "storage.csv")
    assert {"fine-tuned checkpoints", "store: tall-tsv-m bf16", "one model: Iso-CTS"} <= set(storage.storage)
    info = run(f"{BIN / 'tallmerge'} info models/store", repo).stdout
    assert "tasks (2, in coding order): colors, shapes" in info and "total" in info
    run(f"{BIN / 'tallmerge'} reconstruct models/store --task shapes --out shapes.safetensors", repo)
    from safetensors.torch import load_file

    rebuilt, base = (
        load_file(repo / "shapes.safetensors"),
        load_file(repo / "models/pretrained/visual.safetensors"),
    )
    assert {k: (v.dtype, v.shape) for k, v in rebuilt.items()} == {
        k: (v.dtype, v.shape) for k, v in base.items()
    }
    (repo / "shapes.safetensors").unlink()


def test_the_text_benchmark_writes_its_metrics_per_suite(repo):
    """The text half runs in the same `dvc repro`: a T5 pre-trained here, fine-tuned per text task,
    merged on the suite by the same stage scripts, reported beside the vision half."""
    frame = pd.read_csv(repo / "metrics" / "text" / "accuracy.csv")
    assert list(frame.columns) == ["suite", "method", "task", "split", "top1"]
    assert (
        set(frame.method) == METHODS and set(frame.task) == set(TEXT_TASKS) and set(frame.suite) == {"nlp7"}
    )
    summary = json.loads((repo / "metrics" / "text" / "summary.json").read_text())
    assert set(summary["nlp7"]) == METHODS | {"compression"}
    assert summary["nlp7"]["finetuned"]["avg_normalized_test"] == 100.0
    assert "projected_gbit_t5_large_2tasks" in summary["nlp7"]["compression"]
    for path in (
        "models/text/pretrained/config.json",
        "models/text/pretrained/tokenizer.json",
        "models/text/pretrained.safetensors",
        "models/text/finetuned/pronoun-ref.safetensors",
        "models/text/nlp7/merged/iso-cts.safetensors",
        "models/text/nlp7/masks/tall-tsv-m.safetensors",
        "models/text/nlp7/store/manifest.json",
        "metrics/text/suites/nlp7/schemes.json",
        "plots/text/methods.csv",
    ):
        assert (repo / path).is_file(), path
    report = (repo / "reports" / "results.md").read_text()
    assert "## The NLP half" in report and "### 7 NLP tasks (nlp7): paraphrase-id, pronoun-ref" in report


def test_plots_render(repo):
    plots = json.loads(run("dvc plots show --json", repo).stdout)["data"]
    assert set(plots) == {
        "plots/text/methods.csv",
        "plots/alpha.csv",
        "plots/overlap.csv",
        "plots/methods.csv",
        "plots/storage.csv",
        "plots/lambda/colors.csv",
        "plots/lambda/shapes.csv",
    }
    for name, rendered in plots.items():
        assert rendered[0]["type"] == "vega" and rendered[0]["content"]["data"]["values"], name


def test_second_repro_does_nothing(repo):
    out = run("dvc repro", repo).stdout
    assert "didn't change, skipping" in out and "Running stage" not in out


def test_changing_one_task_reruns_only_its_branch(repo):
    """Out of date: the task's own fine-tuning and the stages that read every task; not the
    other tasks' branches. The task's stage reruns alone and changes only its model. (Running
    the downstream stages too would only re-test DVC; the project is restored afterwards.)"""
    before = lock_hashes(repo)
    original = {name: (repo / name).read_text() for name in ("params.yaml", "dvc.lock")}
    params = yaml.safe_load(original["params.yaml"])
    params["tasks"]["colors"] = {"steps": 6}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        merging = {f"merge@{m}" for m in MERGES} | {"magnitude", "compress", "schemes"}
        stale = set(json.loads(run("dvc status --json", repo).stdout))
        assert stale == {"finetune@colors", "evaluate"} | merging | (
            MASK_STAGES - {"report"}
        )  # no text stage
        assert ran_stages(run("dvc repro --single-item finetune@colors", repo).stdout) == {"finetune@colors"}
        after = lock_hashes(repo)
        assert after["models/finetuned/colors.safetensors"] != before["models/finetuned/colors.safetensors"]
        assert after["models/finetuned/shapes.safetensors"] == before["models/finetuned/shapes.safetensors"]
    finally:
        for name, text in original.items():
            (repo / name).write_text(text)
        run("dvc checkout -q --force", repo)
    assert lock_hashes(repo) == before and json.loads(run("dvc status --json", repo).stdout) == {}


def test_exp_run_with_one_lambda_reruns_only_mask_stages(repo):
    run("git add -A && git commit -qm baseline", repo)
    ran = ran_stages(run("dvc exp run -S lambda=0.4", repo).stdout)
    assert ran == MASK_STAGES | TEXT_MASK_STAGES  # of both benchmarks, and only those
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert summary["tall-ta"]["lambda"] == {"colors": 0.4, "shapes": 0.4}
    text = json.loads((repo / "metrics" / "text" / "summary.json").read_text())
    assert text["nlp7"]["tall-ta"]["lambda"] == {t: 0.4 for t in TEXT_TASKS}
    diff = run("dvc metrics diff --json", repo).stdout
    assert "tall-ta.lambda.colors" in diff or "tall-ta" in diff
    run("git checkout -q -- . && dvc checkout -q", repo)


def test_same_params_give_byte_identical_artifacts(repo):
    before = lock_hashes(repo)
    run("dvc repro --force --single-item finetune@shapes pretrain", repo)
    after = lock_hashes(repo)
    for path in (
        "models/pretrained/visual.safetensors",
        "models/pretrained/text.safetensors",
        "models/finetuned/shapes.safetensors",
        "models/heads/shapes.safetensors",
    ):
        assert after[path] == before[path], path


def test_bad_params_fail_with_one_line_and_keep_outputs(repo):
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tasks"]["shapes"] = {"lr": -1}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = (repo / "models" / "finetuned" / "shapes.safetensors").read_bytes()
    result = run(f"{BIN / 'python'} stages/finetune.py shapes", repo, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params.yaml: 'tasks.shapes.lr' must be a positive number, got -1"
    assert (repo / "models" / "finetuned" / "shapes.safetensors").read_bytes() == before
    (repo / "params.yaml").write_text(original)


def test_unknown_task_and_corrupted_input_fail_cleanly(repo):
    result = run(f"{BIN / 'python'} stages/prepare.py imagenet", repo, check=False)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("error: unknown task 'imagenet'; available: ")
        and result.stderr.count("\n") == 1
    )

    data = repo / "data" / "tasks" / "colors.safetensors"
    output = repo / "models" / "finetuned" / "colors.safetensors"
    original, before = data.read_bytes(), output.read_bytes()
    try:
        data.write_bytes(original[: len(original) // 3])  # a truncated download, say
        result = run(f"{BIN / 'python'} stages/finetune.py colors", repo, check=False)
        assert result.returncode == 2
        assert result.stderr.strip().startswith("error: data/tasks/colors.safetensors: ")
        assert output.read_bytes() == before
        assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    finally:
        data.write_bytes(original)
