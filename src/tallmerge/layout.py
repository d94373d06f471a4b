"""Where the pipeline keeps its artifacts; dvc.yaml declares the same paths.

The vision benchmark's artifacts sit at the top of ``data/``, ``models/`` and ``metrics/``; the
text benchmark's under ``text/`` in each, its merges once per suite (``models/text/<suite>/``,
``metrics/text/suites/<suite>/``). :class:`Layout` names the merge-side paths of either.
"""

from dataclasses import dataclass
from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")

PRETRAINED_VISUAL = MODELS / "pretrained" / "visual.safetensors"
PRETRAINED_TEXT = MODELS / "pretrained" / "text.safetensors"
ACCURACY_CSV = METRICS / "accuracy.csv"
SUMMARY_JSON = METRICS / "summary.json"
PLOTS = Path("plots")
RESULTS_MD = Path("reports") / "results.md"


@dataclass(frozen=True)
class Layout:
    """The paths of one merge setting: its merged models, masks, stores and method results."""

    models: Path
    metrics: Path

    @property
    def store(self) -> Path:
        return self.models / "store"

    @property
    def compression(self) -> Path:
        return self.metrics / "compression.json"

    @property
    def schemes(self) -> Path:
        """The rival stores (EMR, TSV-C), measured."""
        return self.metrics / "schemes.json"

    def masks(self, mtv: str) -> Path:
        """TALL masks of every task at every lambda of the grid, tau_MTL formed by ``mtv``."""
        return self.models / "masks" / f"{mtv}.safetensors"

    def selected_masks(self, mtv: str) -> Path:
        """Each task's TALL mask at its lambda selected on validation."""
        return self.models / "masks" / f"tall-{mtv}.safetensors"

    def merged(self, method: str) -> Path:
        return self.models / "merged" / f"{method}.safetensors"

    def method_metrics_path(self, method: str) -> Path:
        """A method's accuracy rows, selection and search curve (JSON)."""
        return self.metrics / "methods" / f"{method}.json"


VISION = Layout(MODELS, METRICS)
STORE = VISION.store
COMPRESSION = VISION.compression
SCHEMES = VISION.schemes
masks = VISION.masks
selected_masks = VISION.selected_masks
merged = VISION.merged
method_metrics_path = VISION.method_metrics_path


def task_data(task: str) -> Path:
    return DATA / "tasks" / f"{task}.safetensors"


def finetuned(task: str) -> Path:
    return MODELS / "finetuned" / f"{task}.safetensors"


def head(task: str) -> Path:
    return MODELS / "heads" / f"{task}.safetensors"


def finetuned_checkpoints(tasks) -> dict[str, Path]:
    return {task: finetuned(task) for task in tasks}


# -- the text benchmark -------------------------------------------------------------------------
TEXT_MODELS = MODELS / "text"
TEXT_MODEL = TEXT_MODELS / "pretrained"  # the T5's config.json and tokenizer files
TEXT_PRETRAINED = TEXT_MODELS / "pretrained.safetensors"  # its weights, the merges' theta_0
TEXT_RESULTS = Layout(TEXT_MODELS, METRICS / "text")  # zero-shot and fine-tuned, every task
TEXT_ACCURACY_CSV = METRICS / "text" / "accuracy.csv"
TEXT_SUMMARY_JSON = METRICS / "text" / "summary.json"


def text_data(task: str) -> Path:
    return DATA / "text" / f"{task}.json"


def text_finetuned(task: str) -> Path:
    return TEXT_MODELS / "finetuned" / f"{task}.safetensors"


def text_suite(suite: str) -> Layout:
    """The merges of one text suite (nlp7, qa8, all11)."""
    return Layout(TEXT_MODELS / suite, METRICS / "text" / "suites" / suite)
