"""params.yaml's ``text`` section, read and validated: the text benchmark's tasks, suites, data,
model, training and evaluation. Its merges read the sections shared with the vision benchmark
(``merge``, ``lambda``, ``mtv``, ``consensus``, ``magnitude``, ``compress``) through
:class:`~tallmerge.params.Params`. Kept apart from it so that the vision stages do not depend on
the text code."""

from __future__ import annotations

from dataclasses import dataclass

from tallmerge.errors import TallmergeError
from tallmerge.params import DataConfig, Params, TrainConfig
from tallmerge.text.tasks import SUITES, get_text_task, suite_tasks


@dataclass(frozen=True, kw_only=True)
class TextPretrainConfig(TrainConfig):
    texts: int  # size of the generated corpus span corruption reads


@dataclass(frozen=True)
class TextEvalConfig:
    """Section ``text.evaluate``: pairs (example, choice) per batch, whether a choice's score is
    its mean (not summed) token log-likelihood, and the longest input in tokens."""

    batch_size: int
    length_norm: bool
    max_input: int


class TextParams(Params):
    """The text benchmark's view of params.yaml: section ``text`` for tasks, data, model, training
    and evaluation; the merge sections (``merge``, ``lambda``, ``mtv``, ``consensus``,
    ``magnitude``, ``compress``) are shared with the vision benchmark."""

    @property
    def tasks(self) -> list[str]:
        tasks = self._get("text.tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise TallmergeError(
                f"{self.source}: 'text.tasks' must be a non-empty mapping of text task names"
            )
        for name in tasks:
            get_text_task(str(name))
        return [str(name) for name in tasks]

    @property
    def suites(self) -> dict[str, list[str]]:
        """``text.suites``: each suite's tasks (the tasks of ``text.tasks`` standing for its paper tasks)."""
        names = self._get("text.suites")
        if not isinstance(names, list) or not names or any(n not in SUITES for n in names):
            raise TallmergeError(
                f"{self.source}: 'text.suites' must list some of {', '.join(SUITES)}, got {names!r}"
            )
        out = {}
        for name in names:
            out[name] = suite_tasks(name, self.tasks)
            if len(out[name]) < 2:
                raise TallmergeError(
                    f"{self.source}: suite '{name}' has {len(out[name])} of 'text.tasks'; merging needs two or more"
                )
        return out

    def suite(self, name: str) -> list[str]:
        suites = self.suites
        if name not in suites:
            raise TallmergeError(
                f"{self.source}: suite {name!r} is not in 'text.suites' ({', '.join(suites)})"
            )
        return suites[name]

    @property
    def arch(self) -> str:
        arch = self._get("text.model.arch")
        if not isinstance(arch, str) or not arch:
            raise TallmergeError(f"{self.source}: 'text.model.arch' must be a T5 config name")
        return arch

    @property
    def pretrained(self) -> str | None:
        """``text.model.pretrained``: None (pre-train the pocket T5 here) or a local Hugging Face T5 folder."""
        value = self._mapping("text.model").get("pretrained")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TallmergeError(
                f"{self.source}: 'text.model.pretrained' must be null or a model folder, got {value!r}"
            )
        return value

    @property
    def data(self) -> DataConfig:
        return self._data("text.data", workers=False)

    @property
    def pretrain(self) -> TextPretrainConfig:
        return self._config(
            TextPretrainConfig, self._mapping("text.pretrain"), lambda k: f"text.pretrain.{k}"
        )

    def finetune(self, task: str) -> TrainConfig:
        if task not in self.tasks:
            raise TallmergeError(
                f"{self.source}: task {task!r} is not in 'text.tasks' ({', '.join(self.tasks)})"
            )
        overrides = self._mapping(f"text.tasks.{task}", self.raw["text"]["tasks"][task] or {})
        merged = {**self._mapping("text.finetune"), **overrides}
        return self._config(
            TrainConfig,
            merged,
            lambda k: f"text.tasks.{task}.{k}" if k in overrides else f"text.finetune.{k}",
        )

    @property
    def evaluate(self) -> TextEvalConfig:
        section = self._mapping("text.evaluate")
        allowed = ("batch_size", "length_norm", "max_input")
        for key in section:
            if key not in allowed:
                raise TallmergeError(
                    f"{self.source}: unknown key 'text.evaluate.{key}' (allowed: {', '.join(allowed)})"
                )
        norm = self._get("text.evaluate.length_norm")
        if not isinstance(norm, bool):
            raise TallmergeError(
                f"{self.source}: 'text.evaluate.length_norm' must be true or false, got {norm!r}"
            )
        return TextEvalConfig(
            self._int("text.evaluate.batch_size", self._get("text.evaluate.batch_size"), minimum=1),
            norm,
            self._int("text.evaluate.max_input", self._get("text.evaluate.max_input"), minimum=2),
        )

    @property
    def eval_batch_size(self) -> int:
        return self.evaluate.batch_size
