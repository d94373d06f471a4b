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


def test_tasks_lists_the_papers_datasets_and_prints_presets(capsys):
    import yaml

    main(["tasks"])
    out = capsys.readouterr().out
    assert "SVHN" in out and "svhn/{train,test}_32x32.mat" in out
    main(["tasks", "--preset", "paper-14"])
    block = yaml.safe_load(capsys.readouterr().out)
    assert list(block["tasks"])[:2] == ["Cars", "DTD"] and len(block["tasks"]) == 14
    assert all(v == {} for v in block["tasks"].values())
