"""Where the pipeline keeps its artifacts; dvc.yaml declares the same paths."""

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")

PRETRAINED_VISUAL = MODELS / "pretrained" / "visual.safetensors"
PRETRAINED_TEXT = MODELS / "pretrained" / "text.safetensors"
ACCURACY_CSV = METRICS / "accuracy.csv"
SUMMARY_JSON = METRICS / "summary.json"
PLOTS = Path("plots")
STORE = MODELS / "store"
COMPRESSION = METRICS / "compression.json"
SCHEMES = METRICS / "schemes.json"  # the EMR and TSV-C stores, measured
RESULTS_MD = Path("reports") / "results.md"


def task_data(task: str) -> Path:
    return DATA / "tasks" / f"{task}.safetensors"


def finetuned(task: str) -> Path:
    return MODELS / "finetuned" / f"{task}.safetensors"


def head(task: str) -> Path:
    return MODELS / "heads" / f"{task}.safetensors"


def masks(mtv: str) -> Path:
    """TALL masks of every task at every lambda of the grid, tau_MTL formed by ``mtv``."""
    return MODELS / "masks" / f"{mtv}.safetensors"


def selected_masks(mtv: str) -> Path:
    """Each task's TALL mask at its lambda selected on validation."""
    return MODELS / "masks" / f"tall-{mtv}.safetensors"


def merged(method: str) -> Path:
    return MODELS / "merged" / f"{method}.safetensors"


def method_metrics_path(method: str) -> Path:
    """A method's accuracy rows, selection and search curve (JSON)."""
    return METRICS / "methods" / f"{method}.json"


def finetuned_checkpoints(tasks) -> dict[str, Path]:
    return {task: finetuned(task) for task in tasks}
