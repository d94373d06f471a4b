"""params.yaml, read and validated: every invalid value fails with a one-line error naming its key."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tallmerge.errors import TallmergeError
from tallmerge.merging.recipes import (
    METHODS,
    MTV_RECIPES,
    OPTIONS,
    RECIPES,
    VECTOR_FORMATS,
    MultiTaskVector,
)
from tallmerge.tasks import get_task

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class TrainConfig:
    """An optimisation recipe: AdamW with a cosine schedule after a linear warm-up."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    clip_grad: float | None = None  # largest global gradient norm (None: no clipping)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainConfig):
    images: int  # size of the captioned pre-training mix
    web_variety: float  # share of a concept's web images drawn in its task's varied style


@dataclass(frozen=True)
class CompressConfig:
    """The compressed store the pipeline keeps (see :meth:`Params.compress`)."""

    mtv: str
    vector_dtype: list[str]
    tolerance: float


@dataclass(frozen=True)
class DataConfig:
    """Section ``data``: images per split (``None``: all of a dataset's; generated tasks need a
    number), the folder holding the real datasets, and DataLoader workers reading them."""

    train: int | None
    val: int | None
    test: int | None
    root: str | None
    workers: int

    @property
    def sizes(self) -> dict[str, int | None]:
        return {"train": self.train, "val": self.val, "test": self.test}


class Params:
    """The parsed params.yaml; accessors validate only the section a stage asks for."""

    def __init__(self, raw: dict[str, Any], source: str = PARAMS_FILE):
        if not isinstance(raw, dict):
            raise TallmergeError(f"{source}: expected a mapping at the top level")
        self.raw = raw
        self.source = source

    @classmethod
    def load(cls, path: str | Path = PARAMS_FILE) -> Params:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise TallmergeError(f"{path}: file not found") from None
        except yaml.YAMLError as e:
            raise TallmergeError(f"{path}: invalid YAML ({' '.join(str(e).split())})") from None
        return cls(raw if raw is not None else {}, str(path))

    # -- accessors -----------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self._int("seed", self._get("seed"), minimum=0)

    @property
    def tasks(self) -> list[str]:
        """The benchmark's task names, in params.yaml order; each must be registered."""
        tasks = self._get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise TallmergeError(f"{self.source}: 'tasks' must be a non-empty mapping of task names")
        for name in tasks:
            get_task(str(name))
        return [str(name) for name in tasks]

    @property
    def arch(self) -> str:
        arch = self._get("model.arch")
        if not isinstance(arch, str) or not arch:
            raise TallmergeError(f"{self.source}: 'model.arch' must be a model config name")
        return arch

    @property
    def pretrained(self) -> str | None:
        """``model.pretrained``: None (pre-train the pocket CLIP in the pipeline), or an open_clip
        pretrained tag found in the local caches, or a checkpoint file (:mod:`tallmerge.clip.pretrained`)."""
        value = self._mapping("model").get("pretrained")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TallmergeError(
                f"{self.source}: 'model.pretrained' must be null, a pretrained tag or a checkpoint path, got {value!r}"
            )
        return value

    @property
    def data(self) -> DataConfig:
        return self._data("data", workers=True)

    def _data(self, dotted: str, workers: bool) -> DataConfig:
        """Section ``dotted``: examples per split, the datasets' folder (and DataLoader workers)."""
        section = self._mapping(dotted)
        allowed = ("train", "val", "test", "root") + (("workers",) if workers else ())
        for key in section:
            if key not in allowed:
                raise TallmergeError(
                    f"{self.source}: unknown key '{dotted}.{key}' (allowed: {', '.join(allowed)})"
                )
        sizes = {}
        for split in ("train", "val", "test"):
            value = self._get(f"{dotted}.{split}")
            sizes[split] = None if value is None else self._int(f"{dotted}.{split}", value, minimum=1)
        root = section.get("root")
        if root is not None and (not isinstance(root, str) or not root.strip()):
            raise TallmergeError(
                f"{self.source}: '{dotted}.root' must be null or a folder path, got {root!r}"
            )
        count = self._int(f"{dotted}.workers", section.get("workers", 0), minimum=0) if workers else 0
        return DataConfig(**sizes, root=root, workers=count)

    @property
    def pretrain(self) -> PretrainConfig:
        config = self._config(PretrainConfig, self._mapping("pretrain"), lambda k: f"pretrain.{k}")
        if config.web_variety > 1:
            raise TallmergeError(
                f"{self.source}: 'pretrain.web_variety' must be a share between 0 and 1, got {config.web_variety!r}"
            )
        return config

    def finetune(self, task: str) -> TrainConfig:
        """The fine-tuning recipe of ``task``: the ``finetune`` defaults, then its overrides."""
        overrides = {k: v for k, v in self._task_entry(task).items() if k != "import"}
        merged = {**self._mapping("finetune"), **overrides}
        return self._config(
            TrainConfig, merged, lambda k: f"tasks.{task}.{k}" if k in overrides else f"finetune.{k}"
        )

    def imported(self, task: str) -> str | None:
        """``tasks.<task>.import``: a fine-tuned checkpoint to import instead of fine-tuning."""
        path = self._task_entry(task).get("import")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise TallmergeError(
                f"{self.source}: 'tasks.{task}.import' must be a checkpoint path, got {path!r}"
            )
        return path

    def _task_entry(self, task: str) -> dict:
        if task not in self.tasks:
            raise TallmergeError(f"{self.source}: task {task!r} is not in 'tasks' ({', '.join(self.tasks)})")
        return self._mapping(f"tasks.{task}", self.raw["tasks"][task] or {})

    @property
    def eval_batch_size(self) -> int:
        return self._int("evaluate.batch_size", self._get("evaluate.batch_size"), minimum=1)

    # -- merging -------------------------------------------------------------------------------
    @property
    def lambdas(self) -> list[float]:
        """The TALL-mask lambda grid (a scalar ``lambda`` fixes it for every task)."""
        value = self._get("lambda")
        grid = value if isinstance(value, list) else [value]
        if not grid or any(not self._is_number(v) or v <= 0 for v in grid) or len(set(grid)) != len(grid):
            raise TallmergeError(
                f"{self.source}: 'lambda' must be a positive number or a list of distinct ones, got {value!r}"
            )
        return [float(v) for v in grid]

    @property
    def mtvs(self) -> list[str]:
        """Section ``mtv``: the recipes of tau_MTL that TALL masks and consensus run over."""
        return self._names("mtv", MTV_RECIPES)

    def mtv(self, kind: str) -> MultiTaskVector:
        """How tau_MTL is formed inside TALL masks and consensus (section ``mtv.<kind>``)."""
        if kind not in self.mtvs:
            raise TallmergeError(f"{self.source}: no section 'mtv.{kind}' (have: {', '.join(self.mtvs)})")
        return MultiTaskVector(kind, **self._options(f"mtv.{kind}", tuple(RECIPES[kind].options)))

    @property
    def merges(self) -> list[str]:
        """Section ``merge``: the single-model merge methods the pipeline runs."""
        return self._names("merge", {n: m for n, m in METHODS.items() if not m.consensus})

    def merge_options(self, method: str) -> dict[str, Any]:
        """A single-model method's options (section ``merge.<method>``): its alpha grid (none for
        weight averaging) and its recipe's options."""
        if method not in self.merges:
            raise TallmergeError(
                f"{self.source}: no section 'merge.{method}' (have: {', '.join(self.merges)})"
            )
        return self._options(f"merge.{method}", METHODS[method].options)

    @property
    def consensus(self) -> dict[str, Any]:
        """Section ``consensus``: the alpha grid and k of every consensus-<mtv> merge."""
        return self._options("consensus", ("alpha", "k"))

    @property
    def magnitude_topk(self) -> float:
        """``magnitude.topk``: the magnitude-masking baseline's percent kept per task."""
        return self._options("magnitude", ("topk",))["topk"]

    def _names(self, section: str, known: dict) -> list[str]:
        names = list(self._mapping(section))
        if not names:
            raise TallmergeError(f"{self.source}: '{section}' must name at least one of {', '.join(known)}")
        for name in names:
            if name not in known:
                raise TallmergeError(
                    f"{self.source}: unknown '{section}.{name}' (choose from {', '.join(known)})"
                )
        return names

    @property
    def compress(self) -> CompressConfig:
        """Section ``compress``: whose masks (``mtv``), the vector dtypes to try, and how many
        points of average normalized validation accuracy a smaller store may lose (``tolerance``)."""
        section = self._mapping("compress")
        allowed = ("mtv", "vector_dtype", "tolerance")
        for key in section:
            if key not in allowed:
                raise TallmergeError(
                    f"{self.source}: unknown key 'compress.{key}' (allowed: {', '.join(allowed)})"
                )
        mtv = self._get("compress.mtv")
        if mtv not in self.mtvs:
            raise TallmergeError(
                f"{self.source}: 'compress.mtv' must be one of the 'mtv' recipes ({', '.join(self.mtvs)}), got {mtv!r}"
            )
        dtypes = self._get("compress.vector_dtype")
        dtypes = dtypes if isinstance(dtypes, list) else [dtypes]
        if not dtypes or any(d not in VECTOR_FORMATS for d in dtypes) or len(set(dtypes)) != len(dtypes):
            raise TallmergeError(
                f"{self.source}: 'compress.vector_dtype' must be one or a list of distinct {', '.join(VECTOR_FORMATS)}, got {dtypes!r}"
            )
        tolerance = self._float("compress.tolerance", self._get("compress.tolerance"), allow_zero=True)
        return CompressConfig(mtv, dtypes, tolerance)

    def _options(self, dotted: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Section ``dotted`` holding exactly the options ``allowed``, each checked by its one
        check (:data:`~tallmerge.merging.recipes.OPTIONS`); ``alpha`` is a grid of values."""
        section = self._mapping(dotted, self._get(dotted) or {})
        for key in section:
            if key not in allowed:
                raise TallmergeError(
                    f"{self.source}: unknown key '{dotted}.{key}' (allowed: {', '.join(allowed) or 'none'})"
                )
        out = {}
        for key in allowed:
            if key not in section:
                raise TallmergeError(f"{self.source}: missing key '{dotted}.{key}'")
            value, where = section[key], f"{self.source}: '{dotted}.{key}'"
            if key == "alpha":  # a grid to choose from on validation
                if not isinstance(value, list) or not value:
                    raise TallmergeError(f"{where} must be a non-empty list of alphas, got {value!r}")
                out[key] = [OPTIONS[key].validate(v, where) for v in value]
            else:
                out[key] = OPTIONS[key].validate(value, where)
        return out

    @staticmethod
    def _is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    # -- validation helpers --------------------------------------------------------------------
    def _get(self, dotted: str) -> Any:
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise TallmergeError(f"{self.source}: missing key '{dotted}'")
            node = node[part]
        return node

    def _mapping(self, dotted: str, value: Any = None) -> dict:
        value = self._get(dotted) if value is None else value
        if not isinstance(value, dict):
            raise TallmergeError(f"{self.source}: '{dotted}' must be a mapping")
        return value

    def _config(self, cls, values: dict, key_of):
        """Build dataclass ``cls`` from ``values``; ``key_of(field)`` names a field in errors."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise TallmergeError(
                    f"{self.source}: unknown key '{key_of(key)}' (allowed: {', '.join(fields)})"
                )
        out = {}
        for key, field in fields.items():
            typ = field.type
            if key not in values:
                if field.default is not dataclasses.MISSING:
                    continue
                raise TallmergeError(f"{self.source}: missing key '{key_of(key)}'")
            if values[key] is None and field.default is None:
                out[key] = None
            elif typ in ("float", float, "float | None"):
                out[key] = self._float(
                    key_of(key), values[key], allow_zero=key in ("weight_decay", "web_variety")
                )
            else:
                out[key] = self._int(key_of(key), values[key], minimum=0 if key == "warmup" else 1)
        config = cls(**out)
        if getattr(config, "warmup", -1) >= getattr(config, "steps", 0):
            raise TallmergeError(
                f"{self.source}: '{key_of('warmup')}' ({config.warmup}) must be smaller than steps ({config.steps})"
            )
        return config

    def _int(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum > 0 else "a non-negative integer"
            raise TallmergeError(f"{self.source}: '{key}' must be {kind}, got {value!r}")
        return value

    def _float(self, key: str, value: Any, allow_zero: bool) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (value < 0 if allow_zero else value <= 0):
            kind = "a non-negative number" if allow_zero else "a positive number"
            raise TallmergeError(f"{self.source}: '{key}' must be {kind}, got {value!r}")
        return float(value)
