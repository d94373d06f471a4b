import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tallmerge.errors import TallmergeError
from tallmerge.params import Params, TrainConfig

PARAMS_FILE = Path(__file__).parents[1] / "params.yaml"
BASE = yaml.safe_load(PARAMS_FILE.read_text())


def make(**changes) -> Params:
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return Params(raw)


def test_project_params_are_valid():
    params = Params.load(PARAMS_FILE)
    assert len(params.tasks) >= 8
    for task in params.tasks:
        assert isinstance(params.finetune(task), TrainConfig)
    assert params.pretrain.steps > params.pretrain.warmup
    assert params.data.train > 0 and params.eval_batch_size > 0


def test_per_task_override_applies_to_that_task_only():
    params = make(tasks={"digits": {"steps": 7, "warmup": 1}, "shapes": {}})
    assert params.finetune("digits").steps == 7
    assert params.finetune("shapes").steps == BASE["finetune"]["steps"]


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"finetune__steps": 0}, "finetune.steps"),
        ({"finetune__steps": 2.5}, "finetune.steps"),
        ({"finetune__lr": 0}, "finetune.lr"),
        ({"finetune__lr": -1e-3}, "finetune.lr"),
        ({"finetune__lr": float("nan")}, "finetune.lr"),
        ({"finetune__weight_decay": -0.1}, "finetune.weight_decay"),
        ({"finetune__batch_size": True}, "finetune.batch_size"),
        ({"finetune__warmup": 10_000}, "finetune.warmup"),
        ({"finetune__momentum": 0.9}, "finetune.momentum"),
        ({"finetune__clip_grad": 0}, "finetune.clip_grad"),
        ({"finetune__clip_grad": "1"}, "finetune.clip_grad"),
        ({"tasks": {"digits": {"stepz": 3}}}, "tasks.digits.stepz"),
        ({"tasks": {"digits": {"lr": 0}}}, "tasks.digits.lr"),
    ],
)
def test_invalid_finetune_values_name_their_key(changes, key):
    params = make(**changes)
    task = next(iter(params.raw["tasks"]))
    with pytest.raises(TallmergeError, match=key.replace(".", r"\.")) as err:
        params.finetune(task)
    assert "\n" not in str(err.value)


def test_gradient_clipping_is_optional_and_per_task():
    raw = copy.deepcopy(BASE)
    raw["finetune"].pop("clip_grad", None)
    raw["tasks"] = {"digits": {}}
    assert Params(raw).finetune("digits").clip_grad is None  # absent: no clipping
    params = make(finetune__clip_grad=1, tasks={"digits": {"clip_grad": None}, "shapes": {}})
    assert params.finetune("shapes").clip_grad == 1.0
    assert params.finetune("digits").clip_grad is None


@pytest.mark.parametrize("tasks", [{}, [], ["digits"], None, "digits"])
def test_empty_or_malformed_task_list(tasks):
    with pytest.raises(TallmergeError, match="'tasks' must be a non-empty mapping"):
        make(tasks=tasks).tasks


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(
        TallmergeError, match=r"unknown task 'imagenet'; available: digits, .*, Cars, .*KMNIST"
    ):
        make(tasks={"imagenet": {}, "digits": {}}).tasks
    with pytest.raises(TallmergeError, match=r"unknown task 'mnist' \(did you mean 'MNIST'\?\)"):
        make(tasks={"mnist": {}}).tasks


def test_invalid_pretrain_and_data_values():
    with pytest.raises(TallmergeError, match=r"pretrain\.images"):
        make(pretrain__images=-5).pretrain
    assert make(pretrain__web_variety=0).pretrain.web_variety == 0.0
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(TallmergeError, match=r"'pretrain\.web_variety' must be"):
            make(pretrain__web_variety=bad).pretrain
    with pytest.raises(TallmergeError, match=r"data\.val"):
        make(data__val=0).data
    with pytest.raises(TallmergeError, match=r"missing key 'evaluate.batch_size'"):
        make(evaluate={}).eval_batch_size


def test_missing_or_broken_params_file(tmp_path):
    with pytest.raises(TallmergeError, match="file not found"):
        Params.load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [1, 2\n")
    with pytest.raises(TallmergeError, match="invalid YAML"):
        Params.load(tmp_path / "params.yaml")


def test_lambda_grid_or_scalar():
    assert make().lambdas == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert make(**{"lambda": 0.4}).lambdas == [0.4]


@pytest.mark.parametrize("value", [0, -0.2, [], [0.2, 0.2], "0.4", [0.3, None], True])
def test_bad_lambda_names_the_key(value):
    with pytest.raises(TallmergeError, match="'lambda' must be a positive number or a list of distinct ones"):
        make(**{"lambda": value}).lambdas


def test_merge_sections():
    params = make()
    assert params.merges == ["average", "task-arithmetic", "ties", "tsv-m", "iso-c", "iso-cts"]
    assert params.mtvs == ["ta", "ties", "tsv-m", "iso-cts"]
    assert params.merge_options("ties") == {
        "alpha": [round(0.1 * i, 1) for i in range(11)],
        "topk": 20.0,
        "agg": "mean",
    }
    assert params.merge_options("average") == {}
    assert params.merge_options("iso-cts")["common_fraction"] == 0.8
    assert params.consensus["k"] == 2 and params.magnitude_topk == 10.0
    assert params.mtv("ties").agg == "sum" and params.mtv("ta").kind == "ta"
    assert params.mtv("iso-cts").options == {"common_fraction": 0.8}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"merge__ties__topk": 120}, "'merge.ties.topk' must be a percentage in [0, 100], got 120"),
        ({"merge__ties__agg": "median"}, "'merge.ties.agg' must be one of mean, sum, got 'median'"),
        ({"consensus__k": -1}, "'consensus.k' must be a non-negative integer, got -1"),
        (
            {"merge__task-arithmetic__alpha": [0.1, -0.3]},
            "'merge.task-arithmetic.alpha' must be a non-negative number, got -0.3",
        ),
        ({"merge__task-arithmetic__alpha": []}, "'merge.task-arithmetic.alpha' must be a non-empty list"),
        ({"merge__average": {"alpha": [1.0]}}, "unknown key 'merge.average.alpha'"),
        (
            {"merge__iso-cts__common_fraction": 0},
            "'merge.iso-cts.common_fraction' must be a number in (0, 1]",
        ),
        ({"merge__tsv-m": {"alpha": [1.0], "topk": 20}}, "unknown key 'merge.tsv-m.topk'"),
        ({"mtv__ties": {"topk": 20}}, "missing key 'mtv.ties.agg'"),
        ({"merge__consensus-ta": {}}, "unknown 'merge.consensus-ta' (choose from average,"),
        ({"merge__fancy": {}}, "unknown 'merge.fancy'"),
        ({"mtv__average": {}}, "unknown 'mtv.average' (choose from ta, ties, tsv-m, iso-c, iso-cts)"),
    ],
)
def test_bad_merge_options_name_the_key(change, message):
    params = make(**change)
    with pytest.raises(TallmergeError, match=re.escape(message)):
        for section in params.merges:
            params.merge_options(section)
        for mtv in params.mtvs:
            params.mtv(mtv)
        params.consensus


def test_compress_mtv_must_be_one_of_the_mtv_recipes():
    params = make(compress__mtv="iso-c")
    with pytest.raises(TallmergeError, match=re.escape("'compress.mtv' must be one of the 'mtv' recipes")):
        params.compress


def test_pretrained_weights_setting():
    assert make().pretrained is None
    assert make(model__pretrained="openai").pretrained == "openai"
    for bad in ("", "  ", 3, ["openai"]):
        with pytest.raises(
            TallmergeError, match=r"'model.pretrained' must be null, a pretrained tag or a checkpoint path"
        ):
            make(model__pretrained=bad).pretrained


def test_task_import_switch():
    params = make(tasks={"digits": {"import": "ckpts/digits.pt"}, "colors": {"steps": 300}})
    assert params.imported("digits") == "ckpts/digits.pt" and params.imported("colors") is None
    assert params.finetune("digits") == TrainConfig(**BASE["finetune"])  # import is not a recipe key
    with pytest.raises(TallmergeError, match=r"'tasks.digits.import' must be a checkpoint path, got 3"):
        make(tasks={"digits": {"import": 3}}).imported("digits")


def test_configuration_imports_no_torch():
    """Reading params.yaml and the artifact layout never loads torch (nor the model or merge code),
    nor scikit-learn and scipy (only the digits task's renderer needs them): every stage and
    command starts with these imports, so they must stay light."""
    heavy = ("torch", "sklearn", "scipy")
    code = (
        "import sys, tallmerge.params, tallmerge.layout; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
