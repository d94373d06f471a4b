import subprocess
import sys

import pytest

from tallmerge.cli import main


def test_tasks_lists_every_pocket_task(capsys):
    main(["tasks"])
    out = capsys.readouterr().out
    for name in (
        "digits",
        "house-numbers",
        "letters",
        "shapes",
        "colors",
        "textures",
        "counting",
        "landcover",
    ):
        assert name in out


def test_models_lists_the_pocket_config(capsys):
    main(["models"])
    assert "pocket-vit" in capsys.readouterr().out.split()


def test_console_script_runs_and_reports_bad_usage():
    ok = subprocess.run([sys.executable, "-m", "tallmerge.cli", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("tallmerge ")
    bad = subprocess.run(
        [sys.executable, "-m", "tallmerge.cli", "frobnicate"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and bad.stderr.count("\n") == 1
    missing = subprocess.run(
        [sys.executable, "-m", "tallmerge.cli", "merge", "average"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "--base" in missing.stderr and "tallmerge merge --help" in missing.stderr


def test_tasks_lists_the_papers_datasets_and_prints_presets(capsys):
    import yaml

    main(["tasks"])
    out = capsys.readouterr().out
    assert "SVHN" in out and "svhn/{train,test}_32x32.mat" in out
    main(["tasks", "--preset", "paper-14"])
    block = yaml.safe_load(capsys.readouterr().out)
    assert list(block["tasks"])[:2] == ["Cars", "DTD"] and len(block["tasks"]) == 14
    assert all(v == {} for v in block["tasks"].values())


def test_tasks_text_lists_the_text_tasks_and_prints_the_suites(capsys):
    import yaml

    main(["tasks", "--text"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 22  # 11 pocket text tasks, 11 datasets
    assert any(line.startswith("fact-chain") and "stands for qasc" in line for line in lines)
    assert any(line.startswith("paws") and "final/{train,dev}.tsv" in line for line in lines)
    main(["tasks", "--text", "--preset", "qa8"])
    block = yaml.safe_load(capsys.readouterr().out)
    assert list(block["text"]["tasks"]) == [
        "cosmos-qa", "social-iqa", "paws", "quail", "wiki-qa", "quartz", "qasc", "ropes"
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        main(["tasks", "--text", "--preset", "nlp9"])
    assert "unknown text suite 'nlp9'" in capsys.readouterr().err


def test_tasks_root_checks_which_datasets_are_readable(tmp_path, capsys):
    import pytest

    from fakes_arrays import FAKES as ARRAY_FAKES
    from fakes_folders import FAKES as FOLDER_FAKES

    for name in ("Cars", "DTD", "EuroSAT", "GTSRB", "RESISC45", "SUN397"):
        FOLDER_FAKES[name](tmp_path)
    ARRAY_FAKES["SVHN"](tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["tasks", "--preset", "paper-8", "--root", str(tmp_path)])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert (
        len(lines) == 8 and lines[4].startswith("MNIST") and "MISSING" in lines[4] and "MNIST/raw" in lines[4]
    )
    assert all(" ok " in line for i, line in enumerate(lines) if i != 4)
    assert err.count("\n") == 1 and "1 of 8 datasets missing or unreadable" in err and "MNIST" in err
    ARRAY_FAKES["MNIST"](tmp_path)
    main(["tasks", "--preset", "paper-8", "--root", str(tmp_path)])
    assert capsys.readouterr().out.count(" ok ") == 8
