import copy
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


@pytest.mark.parametrize("tasks", [{}, [], ["digits"], None, "digits"])
def test_empty_or_malformed_task_list(tasks):
    with pytest.raises(TallmergeError, match="'tasks' must be a non-empty mapping"):
        make(tasks=tasks).tasks


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(TallmergeError, match=r"unknown task 'mnist'.*digits"):
        make(tasks={"mnist": {}, "digits": {}}).tasks


def test_invalid_pretrain_and_data_values():
    with pytest.raises(TallmergeError, match=r"pretrain\.images"):
        make(pretrain__images=-5).pretrain
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
