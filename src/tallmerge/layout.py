"""Where the pipeline keeps its artifacts; dvc.yaml declares the same paths."""

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")

PRETRAINED_VISUAL = MODELS / "pretrained" / "visual.safetensors"
PRETRAINED_TEXT = MODELS / "pretrained" / "text.safetensors"
ACCURACY_CSV = METRICS / "accuracy.csv"
SUMMARY_JSON = METRICS / "summary.json"


def task_data(task: str) -> Path:
    return DATA / "tasks" / f"{task}.safetensors"


def finetuned(task: str) -> Path:
    return MODELS / "finetuned" / f"{task}.safetensors"


def head(task: str) -> Path:
    return MODELS / "heads" / f"{task}.safetensors"
