"""Tasks: the registry, the pocket benchmark's generated tasks and the paper's 20 dataset tasks
(both registered on import), and each task's data file (:mod:`.datafile`, imported on demand)."""

from tallmerge.tasks import pocket  # noqa: F401  (registers the pocket tasks)
from tallmerge.tasks.paper import PRESETS, DatasetTask  # (registers the paper's tasks)
from tallmerge.tasks.registry import SPLITS, WEB_SPLIT, Task, available_tasks, get_task, register_task

__all__ = [
    "SPLITS",
    "WEB_SPLIT",
    "DatasetTask",
    "PRESETS",
    "Task",
    "available_tasks",
    "get_task",
    "register_task",
]
