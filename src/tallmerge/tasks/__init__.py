"""Tasks: the registry, and the pocket benchmark's generated tasks (registered on import)."""

from tallmerge.tasks.registry import SPLITS, WEB_SPLIT, Task, available_tasks, get_task, register_task
from tallmerge.tasks import pocket  # noqa: F401  (registers the pocket tasks)

__all__ = ["SPLITS", "WEB_SPLIT", "Task", "available_tasks", "get_task", "register_task"]
