"""The registry of merge methods: every way of forming a merged vector is declared here once.

A *recipe* forms one vector from the task vectors tau_t of a checkpoint set. Each recipe is also
a single-model merge method (theta_0 + alpha * vector, alpha chosen on validation), can be the
multi-task vector tau_MTL inside TALL masks (``mtv``), and gives a consensus merge
(``consensus-<recipe>``: tau_MTL kept where at least k tasks' TALL masks are on). Weight
averaging is Task Arithmetic at alpha = 1/T. So a method is a recipe plus how it is applied, and
everything that names methods (the planner in :mod:`tallmerge.merging.methods`, params.yaml
validation, the command line, the stage scripts, the report) reads the declarations below.

Adding a method: its per-tensor maths in :mod:`tallmerge.merging.maths` (or, if it needs
whole-model statistics first, a preparer in :mod:`tallmerge.merging.statistics`), one
:class:`Recipe` entry here, and its params.yaml / dvc.yaml lines.

This module imports no torch: configuration code reads it without loading the merge stack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tallmerge.errors import TallmergeError

STORED_VECTOR_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # name -> torch dtype
QUANTIZED_VECTOR_BITS = {"int8": 8, "int4": 4, "int3": 3, "int2": 2}  # block-quantized stored vectors: bits
VECTOR_FORMATS = (*STORED_VECTOR_DTYPES, *QUANTIZED_VECTOR_BITS)  # how a store may hold a vector
AGGREGATIONS = ("mean", "sum")  # TIES's disjoint aggregation of the agreeing entries


# -- options: each checked in exactly one function ----------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_alpha(value: Any) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError(f"must be a non-negative number, got {value!r}")
    return float(value)


def check_topk(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 100:
        raise ValueError(f"must be a percentage in [0, 100], got {value!r}")
    return float(value)


def check_aggregation(value: Any) -> str:
    if value not in AGGREGATIONS:
        raise ValueError(f"must be one of {', '.join(AGGREGATIONS)}, got {value!r}")
    return value


def check_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer, got {value!r}")
    return value


def check_fraction(value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 1:
        raise ValueError(f"must be a number in (0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Option:
    """An option of a recipe or of how a method is applied. ``name`` is its params.yaml key; on
    the command line it is ``--name`` with ``_`` as ``-`` (``flag`` when that differs)."""

    name: str
    check: Callable[[Any], Any]  # value -> normalized value; ValueError("must be ...") if invalid
    help: str
    kind: type = float  # what the command line parses
    choices: tuple[str, ...] | None = None
    flag: str | None = None

    @property
    def cli(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    def validate(self, value: Any, where: str) -> Any:
        """The checked value, or a one-line error naming ``where`` (a params key or a flag)."""
        try:
            return self.check(value)
        except ValueError as e:
            raise TallmergeError(f"{where} {e}") from None


OPTIONS = {
    option.name: option
    for option in (
        Option("alpha", check_alpha, "scaling of the merged vector: theta_0 + alpha * vector (average: 1/T)"),
        Option("topk", check_topk, "TIES: percent of each task vector's largest magnitudes kept"),
        Option(
            "agg",
            check_aggregation,
            "TIES: disjoint mean or sum of the entries agreeing with the elected sign",
            kind=str,
            choices=AGGREGATIONS,
            flag="ties-agg",
        ),
        Option("k", check_k, "consensus: keep weights used by at least k tasks' TALL masks", kind=int),
        Option(
            "common_fraction",
            check_fraction,
            "Iso-CTS: share of the rank given to the common subspace of sum_t tau_t",
        ),
    )
}


# -- recipes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperRow:
    """A published average test top-1 (absolute, normalized) and where it comes from."""

    absolute: float | None
    normalized: float | None = None
    source: str = "Wang et al., ICML 2024 (CLIP ViT-B/32, 8 tasks)"


@dataclass(frozen=True)
class Recipe:
    """One way of forming a vector from the task vectors.

    ``vector`` says how it is computed: ``maths.NAME`` is a per-tensor function
    ``NAME(taus, **options)``; ``statistics.NAME`` a preparer ``NAME(ckpts, **options)`` that
    makes whole-model passes first and returns the per-tensor function.
    ``options`` are its own options with their defaults as a merge method; ``as_mtv`` overrides
    defaults where tau_MTL inside TALL masks and consensus follows the paper's code differently.
    """

    name: str  # as tau_MTL: params `mtv.<name>`, tall@<name>, tall-<name>, consensus-<name>
    method: str | None  # the single-model merge method that applies it (None: a store's vector only)
    label: str
    vector: str
    options: Mapping[str, Any] = field(default_factory=dict)
    as_mtv: Mapping[str, Any] = field(default_factory=dict)
    paper: PaperRow | None = None
    consensus_paper: PaperRow | None = None
    tall_paper: PaperRow | None = None  # TALL masks over this tau_MTL
    short: str = ""  # in "Consensus <short>", "TALL mask + <short>" (default: the label)
    describe: Callable[[Mapping[str, Any]], str] = lambda options: ""
    elementwise: bool = False  # each weight's value depends on that weight's tau_t only (rows may be split)


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "ta",
            "task-arithmetic",
            "Task Arithmetic",
            vector="maths.task_sum",
            paper=PaperRow(70.8, 76.5),
            consensus_paper=PaperRow(75.0, 80.8),
            tall_paper=PaperRow(92.6, 99.7),
            short="TA",
            describe=lambda o: "sum of task vectors",
            elementwise=True,
        ),
        Recipe(
            "ties",
            "ties",
            "TIES",
            vector="statistics.ties_vector",
            options={"topk": 20.0, "agg": "mean"},
            as_mtv={"agg": "sum"},  # the paper's code forms tau_MTL with TIES's disjoint sum
            paper=PaperRow(75.1, 81.0),
            consensus_paper=PaperRow(74.8, 80.6),
            tall_paper=PaperRow(93.0, 100.3),
            describe=lambda o: f"top-{o['topk']:g}%, disjoint {o['agg']}",
            elementwise=True,
        ),
        Recipe(
            "tsv-m",
            "tsv-m",
            "TSV-M",
            vector="maths.tsv_merge",
            paper=PaperRow(85.9, None, "Gargiulo et al., CVPR 2025 (ViT-B/32, 8 tasks, their checkpoints)"),
            describe=lambda o: "task singular vectors, orthogonalised",
        ),
        Recipe(
            "iso-c",
            "iso-c",
            "Iso-C",
            vector="maths.iso_c",
            paper=PaperRow(82.8, None, "FusionBench (ViT-B/32, 8 tasks, its checkpoints)"),
            describe=lambda o: "sum of task vectors, spectrum flattened",
        ),
        Recipe(
            "iso-cts",
            "iso-cts",
            "Iso-CTS",
            vector="maths.iso_cts",
            options={"common_fraction": 0.8},
            paper=None,  # published for ViT-L/14 only (94.7 at 8 tasks)
            describe=lambda o: (
                f"common {o['common_fraction']:g} of the rank + task subspaces, spectrum flattened"
            ),
        ),
        Recipe(
            "emr",
            None,  # the vector of EMR-Merging's per-task scheme (a store), not a merge on its own
            "EMR unified vector",
            vector="maths.emr_unified",
            describe=lambda o: "sign of the sum, largest agreeing magnitude",
            elementwise=True,
        ),
    )
}
MTV_RECIPES = {name: recipe for name, recipe in RECIPES.items() if recipe.method}

AVERAGE = "average"  # Task Arithmetic at alpha = 1/T
AVERAGE_PAPER = PaperRow(66.5, 72.3)
CONSENSUS_PREFIX = "consensus-"


def recipe_named(name: Any, where: str = "tau_MTL", recipes: Mapping[str, Recipe] = RECIPES) -> Recipe:
    if name not in recipes:
        raise TallmergeError(f"{where}: unknown recipe {name!r} (choose from {', '.join(recipes)})")
    return recipes[name]


# -- methods: a recipe and how it is applied ----------------------------------------------------
@dataclass(frozen=True)
class Method:
    name: str
    label: str
    recipe: Recipe
    consensus: bool = False  # the recipe's vector where >= k tasks' TALL masks are on
    fixed_alpha: bool = False  # alpha = 1/T (weight averaging)
    paper: PaperRow | None = None

    @property
    def options(self) -> tuple[str, ...]:
        """The options this method takes (params.yaml section and command-line flags)."""
        return (
            *(() if self.fixed_alpha else ("alpha",)),
            *self.recipe.options,
            *(("k",) if self.consensus else ()),
        )

    def defaults(self) -> dict[str, Any]:
        out = dict(self.recipe.options)
        if self.consensus:
            out.update(self.recipe.as_mtv, k=2)
        if not self.fixed_alpha:
            out["alpha"] = 1.0
        return out


def _methods() -> dict[str, Method]:
    ta = RECIPES["ta"]
    out = {AVERAGE: Method(AVERAGE, "Weight averaging", ta, fixed_alpha=True, paper=AVERAGE_PAPER)}
    for recipe in MTV_RECIPES.values():
        out[recipe.method] = Method(recipe.method, recipe.label, recipe, paper=recipe.paper)
    for recipe in MTV_RECIPES.values():
        name = CONSENSUS_PREFIX + recipe.name
        label = f"Consensus {recipe.short or recipe.label}"
        out[name] = Method(name, label, recipe, True, paper=recipe.consensus_paper)
    return out


METHODS = _methods()


def method_named(name: Any) -> Method:
    if name not in METHODS:
        raise TallmergeError(f"unknown merge method {name!r} (choose from {', '.join(METHODS)})")
    return METHODS[name]


def check_options(
    allowed: tuple[str, ...], values: Mapping[str, Any], owner: str, name_of: Callable[[str], str]
) -> dict:
    """Each given option checked by its one check; an option ``owner`` does not take is an
    error. ``name_of(option)`` names an option in errors (a command-line flag, a key)."""
    out = {}
    for name, value in values.items():
        if name not in allowed:
            takes = ", ".join(name_of(a) for a in allowed) or "no options"
            raise TallmergeError(f"{name_of(name)} does not apply to {owner} (it takes {takes})")
        out[name] = OPTIONS[name].validate(value, name_of(name))
    return out


# -- tau_MTL: a recipe with its options resolved -------------------------------------------------
@dataclass(frozen=True)
class MultiTaskVector:
    """How tau_MTL (or a method's vector) is formed: a recipe and its options, checked.

    ``MultiTaskVector("ties", topk=30)``: options not given take the recipe's defaults as
    tau_MTL (TIES: top-20 %, disjoint sum). Hashable: whole-model passes are cached by it."""

    kind: str
    settings: tuple[tuple[str, Any], ...]

    def __init__(self, kind: str = "ta", **options: Any):
        recipe = recipe_named(kind)
        values = {**recipe.options, **recipe.as_mtv}
        values.update(check_options(tuple(recipe.options), options, f"recipe '{kind}'", repr))
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "settings", tuple(values.items()))

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.kind]

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.settings)

    def __getattr__(self, name: str) -> Any:  # mtv.topk, mtv.agg, ...
        for key, value in self.__dict__.get("settings", ()):
            if key == name:
                return value
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """What files record (mask files, store manifests): ``{"kind": ..., **options}``."""
        return {"kind": self.kind, **self.options}

    @classmethod
    def from_dict(cls, recorded: Mapping[str, Any]) -> MultiTaskVector:
        """Read :meth:`to_dict`'s record. Files written by tallmerge 0.x before the registry
        recorded ``topk`` and ``agg`` for every recipe; they are ignored where they do not apply."""
        kind = recorded["kind"]
        options = {k: v for k, v in recorded.items() if k in recipe_named(kind).options}
        return cls(kind, **options)

    def __str__(self) -> str:
        detail = self.recipe.describe(self.options)
        return f"{self.kind} ({detail})" if detail else self.kind
