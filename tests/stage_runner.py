"""Run a pipeline stage script in this process, as `python stages/<stage>.py ARGS` would run it
in ``cwd`` (skipping a fresh interpreter's start-up; tests/test_pipeline.py runs real processes
through DVC)."""

import contextlib
import runpy
import sys
from pathlib import Path

STAGES = Path(__file__).resolve().parents[1] / "stages"


def run_stage(stage: str, *args: str, cwd: Path) -> int:
    """The script's exit status (its one-line errors go to stderr, as usual)."""
    argv = sys.argv
    sys.argv = [f"stages/{stage}.py", *args]
    try:
        with contextlib.chdir(cwd):
            runpy.run_path(str(STAGES / f"{stage}.py"), run_name="__main__")
        return 0
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = argv
