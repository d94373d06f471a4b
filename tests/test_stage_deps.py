"""Every stage of dvc.yaml depends on all the library code it runs, so its outputs cannot go stale.

A stage's code is its script (found in its ``cmd``) and the import closure of that script inside
``src/tallmerge``: every module it imports, at the top or inside a function (lazy imports run
too), the packages' ``__init__.py`` on the way, and so on recursively. Imports under
``if TYPE_CHECKING:`` never run and are left out. Each file of the closure must be covered by
one of the stage's deps: the file itself or a folder above it.

The library's layers are checked from the same imports: a module imports only from the layers
below its own (errors and layout, formats, tasks, training, the model families clip and text,
merging, store, results, then params, the stage setting and the CLI), and merging and store never
import the model code (clip, text) or the tasks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "tallmerge"


# -- the import closure ------------------------------------------------------------------------
def module_file(name: str, src: Path) -> Path | None:
    """The file that defines module ``name`` under ``src``: ``a/b.py`` or ``a/b/__init__.py``."""
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST):
    """Every Import and ImportFrom node that can run: anywhere, even in functions, but not
    under ``if TYPE_CHECKING:`` (the ``else`` branch of such an ``if`` does run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path, src: Path, package: str) -> set[str]:
    """The modules of ``package`` that the file ``path`` imports directly, with their parent
    packages (importing ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path, src) if path.is_relative_to(src) else ""
    is_package = path.name == "__init__.py"
    names = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: against this module's package
            parts = here.split(".") if is_package else here.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            origin = ".".join(parts + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names.add(origin)
        names.update(f"{origin}.{alias.name}" for alias in node.names if alias.name != "*")
    found = set()
    for name in names:
        if name != package and not name.startswith(package + "."):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the parents run first
            prefix = ".".join(parts[:i])
            if module_file(prefix, src) is not None:
                found.add(prefix)
    return found


def import_closure(script: Path, src: Path = SRC, package: str = PACKAGE) -> dict[Path, Path]:
    """Every module file of ``package`` (under ``src``) that running ``script`` imports, directly
    or not, mapped to a file that imports it (for error messages)."""
    closure: dict[Path, Path] = {}
    todo = [script]
    while todo:
        current = todo.pop()
        for name in imported_modules(current, src, package):
            target = module_file(name, src)
            if target not in closure:
                closure[target] = current
                todo.append(target)
    return closure


# -- dvc.yaml ----------------------------------------------------------------------------------
def stages() -> dict[str, dict]:
    """Each stage of dvc.yaml (a ``foreach`` stage once, by its ``do`` template)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    return {name: stage.get("do", stage) for name, stage in spec["stages"].items()}


def stage_script(stage: dict) -> Path:
    scripts = [word for word in stage["cmd"].split() if word.endswith(".py")]
    assert len(scripts) == 1, f"cannot tell the stage script in {stage['cmd']!r}"
    return ROOT / scripts[0]


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(ROOT).parts
    return any(relative[: len(Path(dep).parts)] == Path(dep).parts for dep in deps)


def uncovered(stage: dict) -> list[str]:
    """What the stage runs but does not depend on, one line each."""
    deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])]
    script = stage_script(stage)
    problems = [] if covered(script, deps) else [f"{script.relative_to(ROOT)} (the stage script)"]
    for path, importer in sorted(import_closure(script).items()):
        if not covered(path, deps):
            problems.append(f"{path.relative_to(ROOT)} (imported by {importer.relative_to(ROOT)})")
    return problems


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_depends_on_all_the_code_it_imports(name):
    problems = uncovered(stages()[name])
    assert not problems, f"dvc.yaml stage '{name}' runs code that is not among its deps: " + "; ".join(
        problems
    )


def test_closure_follows_lazy_relative_and_parent_imports(tmp_path):
    src = tmp_path / "src"
    files = {
        "pkg/__init__.py": '"""A package."""\n',
        "pkg/low.py": "X = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mid.py": "from typing import TYPE_CHECKING\n\nfrom ..low import X\n\nif TYPE_CHECKING:\n"
        "    from pkg import typing_only\n\n\ndef later():\n    from pkg.sub import lazy\n",
        "pkg/sub/lazy.py": "import pkg.deep.leaf\n",
        "pkg/deep/__init__.py": "",
        "pkg/deep/leaf.py": "",
        "pkg/typing_only.py": "",
        "pkg/unused.py": "",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    script = tmp_path / "script.py"
    script.write_text("import os\n\n\ndef main():\n    from pkg.sub.mid import later\n")
    closure = import_closure(script, src, "pkg")
    found = sorted(str(p.relative_to(src)) for p in closure)
    assert found == [
        "pkg/__init__.py",
        "pkg/deep/__init__.py",
        "pkg/deep/leaf.py",
        "pkg/low.py",
        "pkg/sub/__init__.py",
        "pkg/sub/lazy.py",
        "pkg/sub/mid.py",
    ]
    assert closure[src / "pkg/sub/lazy.py"] == src / "pkg/sub/mid.py"  # the lazy import, inside a function


def test_an_uncovered_module_is_named():
    stage = {"cmd": "python stages/tall.py ta", "deps": ["stages/tall.py", "src/tallmerge/merging"]}
    problems = uncovered(stage)
    assert any(p.startswith("src/tallmerge/formats/tensorfile.py") for p in problems), problems
    assert not any(p.startswith("src/tallmerge/merging/") for p in problems), problems


# -- layers ------------------------------------------------------------------------------------
# What each part of the library may import from tallmerge (besides itself).
ALLOWED = {
    "tallmerge": set(),
    "tallmerge.errors": set(),
    "tallmerge.layout": set(),
    "tallmerge.formats": {"tallmerge", "tallmerge.errors"},
    "tallmerge.tasks": {"tallmerge", "tallmerge.errors", "tallmerge.formats"},
    "tallmerge.training": {"tallmerge"},
    "tallmerge.clip": {
        "tallmerge",
        "tallmerge.errors",
        "tallmerge.formats",
        "tallmerge.tasks",
        "tallmerge.training",
    },
    "tallmerge.text": {"tallmerge", "tallmerge.errors", "tallmerge.formats", "tallmerge.training"},
    "tallmerge.merging": {"tallmerge", "tallmerge.errors", "tallmerge.formats"},
    "tallmerge.store": {"tallmerge", "tallmerge.errors", "tallmerge.formats", "tallmerge.merging"},
    "tallmerge.results": {
        "tallmerge",
        "tallmerge.errors",
        "tallmerge.layout",
        "tallmerge.formats",
        "tallmerge.tasks",
        "tallmerge.clip",
        "tallmerge.text",
        "tallmerge.merging",  # the report reads the method registry (labels, published rows)
        "tallmerge.store",  # and the paper's storage accounting (the projections)
    },
    "tallmerge.params": {"tallmerge", "tallmerge.errors", "tallmerge.tasks", "tallmerge.merging"},
    "tallmerge.text_params": {
        "tallmerge",
        "tallmerge.errors",
        "tallmerge.formats",
        "tallmerge.text",
        "tallmerge.params",
    },
    # what a merge-side stage works on: the vision benchmark or a text suite (paths, checkpoints,
    # evaluator), so it sits above everything but the CLI
    "tallmerge.setting": {
        "tallmerge",
        "tallmerge.errors",
        "tallmerge.layout",
        "tallmerge.formats",
        "tallmerge.clip",
        "tallmerge.text",
        "tallmerge.merging",
        "tallmerge.results",
        "tallmerge.params",
        "tallmerge.text_params",
    },
}


def _part(name: str) -> str:
    return ".".join(name.split(".")[:2])


@pytest.mark.parametrize(
    "path", sorted(SRC.joinpath(PACKAGE).rglob("*.py")), ids=lambda p: str(p.relative_to(SRC))
)
def test_layers_import_only_downwards(path):
    me = _part(_module_name(path, SRC))
    if me == "tallmerge.cli":
        return  # the top: it may import anything
    wrong = sorted(
        name
        for name in imported_modules(path, SRC, PACKAGE)
        if _part(name) != me and _part(name) not in ALLOWED[me]
    )
    assert not wrong, f"{path.relative_to(ROOT)} ({me}) imports {', '.join(wrong)}, above its layer"


def test_every_library_part_has_a_layer():
    parts = {_part(_module_name(p, SRC)) for p in SRC.joinpath(PACKAGE).rglob("*.py")}
    assert parts - {"tallmerge.cli"} <= set(ALLOWED), parts - set(ALLOWED)
