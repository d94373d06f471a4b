"""The text half's real path, end to end through the stage scripts: a T5 saved with
``save_pretrained`` (tiny, random, sharded) and fake files of the paper's datasets in their
release layouts are prepared, fine-tuned, evaluated, merged, masked and compressed."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from fakes_text import counts, write_layouts
from stage_runner import run_stage
from tallmerge.formats.files import load_tensors
from tallmerge.store.reader import Store
from tallmerge.text import t5
from tallmerge.text.tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["qasc", "quartz", "wsc"]  # three of the 7-NLP suite, with the smallest hold-outs
WORDS = "the a what do plants need light sand noise salt ice rock wind oil sun . ? , : yes no".split()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-project")
    data = root / "datasets"
    for task in TASKS:  # each task's train source must exceed its real hold-out
        release, _ = write_layouts(root / "written" / task, task, counts(task, train=540, test=12))
        shutil.move(release / task, data / task)
    tokenizer = build_tokenizer(WORDS, 8)
    config = t5.pocket_config("pocket-t5", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    config.d_model, config.d_ff, config.d_kv, config.num_layers, config.num_decoder_layers = 64, 128, 16, 1, 1
    model = t5.create_t5(config, seed=0)
    model.save_pretrained(root / "t5-tiny", max_shard_size="50KB")
    tokenizer.save_pretrained(str(root / "t5-tiny"))

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["text"].update(
        tasks={t: {} for t in TASKS},
        suites=["nlp7"],
        data={"train": 24, "val": 8, "test": 8, "root": str(data)},
        model={"arch": "pocket-t5", "pretrained": str(root / "t5-tiny")},
        finetune={"steps": 30, "batch_size": 8, "lr": 0.003, "weight_decay": 0.0, "warmup": 3},
        evaluate={"batch_size": 64, "length_norm": True, "max_input": 64},
    )
    params["lambda"] = [0.3, 0.5]
    params["merge"] = {"ties": {**params["merge"]["ties"], "alpha": [0.5, 1.0]}}
    params["consensus"]["alpha"] = [0.5, 1.0]
    params["mtv"] = {"ta": {}}
    params["compress"].update(mtv="ta", vector_dtype=["fp32", "int4"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def run(stage, *args):
        assert run_stage(stage, *args, cwd=root) == 0, (stage, args)

    for task in TASKS:
        run("text_prepare", task)
    run("text_pretrain")
    for task in TASKS:
        run("text_finetune", task)
    run("text_evaluate")
    run("merge", "ties", "--suite", "nlp7")
    run("tall", "ta", "--suite", "nlp7")
    run("consensus", "ta", "--suite", "nlp7")
    run("compress", "--suite", "nlp7")
    return root


def result(project, path):
    return json.loads((project / path).read_text())


def test_the_real_model_folder_becomes_theta_0(project):
    state, _ = load_tensors(project / "models/text/pretrained.safetensors")
    source = t5.from_folder(project / "t5-tiny")  # sharded, read through its index
    assert state.keys() == t5.weights(source).keys()
    assert all(torch.equal(state[k], v) for k, v in t5.weights(source).items())
    assert (project / "models/text/pretrained/config.json").is_file()
    assert (project / "models/text/pretrained/tokenizer.json").is_file()


def test_every_task_is_prepared_from_its_release_files_and_fine_tuned(project):
    for task in TASKS:
        data = result(project, f"data/text/{task}.json")
        assert data["paper_task"] == task
        assert [len(data["splits"][s]) for s in ("train", "val", "test")] == [24, 8, 8]
        inputs = {s: {e["input"] for e in data["splits"][s]} for s in ("train", "val", "test")}
        assert not (inputs["train"] & inputs["val"]) and not (inputs["val"] & inputs["test"])
        tuned, _ = load_tensors(project / f"models/text/finetuned/{task}.safetensors")
        base, _ = load_tensors(project / "models/text/pretrained.safetensors")
        assert tuned.keys() == base.keys() and any(not torch.equal(tuned[k], base[k]) for k in base)
    for method in ("zeroshot", "finetuned"):
        rows = result(project, f"metrics/text/methods/{method}.json")["accuracy"]
        assert {(r["task"], r["split"]) for r in rows} == {(t, s) for t in TASKS for s in ("val", "test")}
        assert all(0 <= r["top1"] <= 100 for r in rows)


def test_the_suite_is_merged_masked_and_compressed(project):
    merged = result(project, "metrics/text/suites/nlp7/methods/ties.json")
    assert merged["selected"]["alpha"] in (0.5, 1.0) and len(merged["search"]) == 2
    tall = result(project, "metrics/text/suites/nlp7/methods/tall-ta.json")
    assert set(tall["selected"]["lambda"]) == set(TASKS)
    consensus = result(project, "metrics/text/suites/nlp7/methods/consensus-ta.json")
    assert sum(consensus["overlap"]) > 0 and len(consensus["overlap"]) == len(TASKS) + 1
    compression = result(project, "metrics/text/suites/nlp7/compression.json")
    assert compression["mtv"] == "ta" and "projected_gbit_t5_large_3tasks" in compression
    # the kept store rebuilds each task as theta_0 + m_t * tau_MTL, in the T5's keys
    store = Store(project / "models/text/nlp7/store")
    base, _ = load_tensors(project / "models/text/pretrained.safetensors")
    rebuilt = store.state("wsc")
    assert rebuilt.keys() == base.keys()
    model = t5.create_t5(t5.load_config(project / "models/text/pretrained"))
    t5.load_weights(model, rebuilt, "store")


def test_a_missing_task_file_fails_in_one_line_naming_it(project, capsys):
    broken = project / "datasets" / "wsc" / "WSC" / "val.jsonl"
    saved = broken.read_bytes()
    broken.unlink()
    try:
        before = (project / "data/text/wsc.json").read_bytes()
        assert run_stage("text_prepare", "wsc", cwd=project) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(broken) in err
        assert (project / "data/text/wsc.json").read_bytes() == before  # nothing lost
    finally:
        broken.write_bytes(saved)


def test_a_tokenizer_that_does_not_match_the_model_is_refused(project, capsys, tmp_path):
    folder = tmp_path / "t5-mismatched"
    shutil.copytree(project / "t5-tiny", folder)
    build_tokenizer([f"w{i}" for i in range(500)], 8).save_pretrained(str(folder))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["text"]["model"]["pretrained"] = str(folder)
    other = tmp_path / "project"
    other.mkdir()
    (other / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run_stage("text_pretrain", cwd=other) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and "embeds only" in err
    assert not (other / "models").exists()
