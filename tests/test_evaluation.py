"""Selection rules: alpha by average normalized validation accuracy, lambda per task; ties go to
the first grid value; validation scores found during the search are reused, not recomputed."""

from tallmerge.results.evaluation import Benchmark
from tallmerge.results.selection import avg_normalized, search_alpha, search_lambda


class FakeBench(Benchmark):
    """A benchmark whose "state" is a dict of per-task scores; counts evaluations."""

    def __init__(self, tasks):
        self.tasks, self.calls = list(tasks), []

    def top1(self, state, task, split):
        self.calls.append((task, split))
        return state[task] if split == "val" else state[task] - 1.0


def test_alpha_maximises_average_normalized_accuracy():
    bench = FakeBench(["a", "b"])
    reference = {"a": 50.0, "b": 100.0}
    # alpha 0.5: a=50 (100 %), b=50 (50 %) -> 75 %; alpha 1.0: a=25 (50 %), b=90 (90 %) -> 70 %,
    # although its plain average top-1 (57.5) is higher than alpha 0.5's (50).
    states = {0.0: {"a": 10.0, "b": 10.0}, 0.5: {"a": 50.0, "b": 50.0}, 1.0: {"a": 25.0, "b": 90.0}}
    alpha, curve, known = search_alpha(bench, states.__getitem__, [0.0, 0.5, 1.0], reference)
    assert alpha == 0.5 and known == {("a", "val"): 50.0, ("b", "val"): 50.0}
    assert [p["avg_normalized_val"] for p in curve] == [15.0, 75.0, 70.0]
    assert avg_normalized({"a": 50.0, "b": 50.0}, reference) == 75.0

    bench.calls.clear()
    rows = bench.rows(lambda task: states[alpha], known)
    assert bench.calls == [("a", "test"), ("b", "test")]  # val came from the search
    assert rows == [
        {"task": "a", "split": "val", "top1": 50.0},
        {"task": "a", "split": "test", "top1": 49.0},
        {"task": "b", "split": "val", "top1": 50.0},
        {"task": "b", "split": "test", "top1": 49.0},
    ]


def test_ties_go_to_the_first_grid_value():
    bench = FakeBench(["a"])
    alpha, _, _ = search_alpha(bench, lambda a: {"a": 60.0}, [0.2, 0.4, 0.6], {"a": 80.0})
    assert alpha == 0.2


def test_lambda_is_chosen_per_task():
    bench = FakeBench(["a", "b"])
    scores = {"a": [70.0, 90.0, 90.0], "b": [80.0, 60.0, 50.0]}
    chosen, curve, known = search_lambda(
        bench, lambda task, i: {task: scores[task][i]}, {"a": [0.2, 0.4, 0.6], "b": [0.2, 0.4, 0.6]}
    )
    assert chosen == {"a": 0.4, "b": 0.2}
    assert known == {("a", "val"): 90.0, ("b", "val"): 80.0}
    assert len(curve) == 6 and curve[0] == {"task": "a", "lambda": 0.2, "top1_val": 70.0}


def test_a_zero_reference_accuracy_is_a_clear_error():
    import pytest

    from tallmerge.errors import TallmergeError

    with pytest.raises(TallmergeError, match="task 'b': its fine-tuned model scores 0 % on validation"):
        avg_normalized({"a": 50.0, "b": 10.0}, {"a": 100.0, "b": 0.0})
