import subprocess
import sys

from tallmerge.cli import main


def test_tasks_lists_every_pocket_task(capsys):
    main(["tasks"])
    out = capsys.readouterr().out
    for name in ("digits", "house-numbers", "letters", "shapes", "colors", "textures", "counting", "landcover"):
        assert name in out


def test_models_lists_the_pocket_config(capsys):
    main(["models"])
    assert "pocket-vit" in capsys.readouterr().out.split()


def test_console_script_runs_and_reports_bad_usage():
    ok = subprocess.run([sys.executable, "-m", "tallmerge.cli", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("tallmerge ")
    bad = subprocess.run([sys.executable, "-m", "tallmerge.cli", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
