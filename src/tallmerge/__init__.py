"""tallmerge: merge and compress fine-tuned CLIP models with task-localization masks."""

__version__ = "0.1.0"
