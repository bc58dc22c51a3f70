"""Code that uses cano_dsl type-checks strictly, as a user writes it.

`mypy --strict --warn-unused-ignores` (and pyright in strict mode, when it is
installed) runs over:

- the user-style files next to this one, whose ``assert_type`` lines pin the types
  the decorators, the builder and the run methods give, and whose
  ``# type: ignore[...]`` (mypy) and ``# pyright: ignore[...]`` (pyright) comments
  mark mistakes that must stay type errors (an ignore that is no longer needed is an
  error too);
- every example under ``examples/`` (globbed, so a new example is checked too);
- the README's and every docs page's ``python`` snippet, collected exactly as
  tests/test_docs.py collects them to run them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _doc_snippets() -> list[tuple[str, int, str]]:
    """The snippets tests/test_docs.py runs (its own collector, so the two agree)."""
    spec = importlib.util.spec_from_file_location(
        "_cano_test_docs", ROOT / "tests" / "test_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    snippets: list[tuple[str, int, str]] = module._snippets()
    return snippets


def _write_snippets(into: Path) -> list[Path]:
    into.mkdir()
    out: list[Path] = []
    for where, index, code in _doc_snippets():
        stem = re.sub(r"\W", "_", where.removesuffix(".md"))
        path = into / f"{stem}_{index}.py"
        path.write_text(f"# {where}, python snippet #{index}\n{code}", encoding="utf-8")
        out.append(path)
    return out


def _user_files() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith("test_"))


def _examples() -> list[Path]:
    return sorted((ROOT / "examples").glob("*.py"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _mypy(files: list[Path], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[lint]')")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--warn-unused-ignores",
            "--no-color-output",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=600,
    )


def _pyright_command() -> list[str] | None:
    """How to run pyright, or None when it is not installed."""
    if importlib.util.find_spec("pyright") is not None:
        return [sys.executable, "-m", "pyright"]
    found = shutil.which("pyright")
    return [found] if found is not None else None


@functools.cache
def _pyright_runs() -> bool:
    """pyright is installed and starts (its PyPI wrapper fetches the checker itself on
    first use, which needs node and the npm registry)."""
    command = _pyright_command()
    if command is None:
        return False
    try:
        proc = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "pyright" in proc.stdout


def _pyright(files: list[Path], workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "typeCheckingMode": "strict",
                "pythonVersion": "3.10",
                "extraPaths": [str(ROOT), str(ROOT / "examples")],
                "reportUnnecessaryTypeIgnoreComment": "error",
                # `# type: ignore[...]` is mypy's; pyright's expected errors are marked
                # `# pyright: ignore[rule]`, so each checker's stale ignores are errors
                "enableTypeIgnoreComments": False,
            }
        ),
        encoding="utf-8",
    )
    if not _pyright_runs():
        pytest.skip("pyright is not installed or cannot start (pip install pyright)")
    command = _pyright_command()
    assert command is not None
    return subprocess.run(
        [*command, "--pythonpath", sys.executable, "-p", str(config), *map(str, files)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=_env(),
        timeout=900,
    )


Checker = Callable[[list[Path], Path], "subprocess.CompletedProcess[str]"]


def _checkers() -> Iterator[object]:
    yield pytest.param(lambda files, work: _mypy(files), id="mypy")
    yield pytest.param(_pyright, id="pyright")


@pytest.mark.parametrize("check", list(_checkers()))
def test_user_code_readme_docs_and_examples_type_check_strictly(
    check: Checker, tmp_path: Path
) -> None:
    files = [*_user_files(), *_examples(), *_write_snippets(tmp_path / "snippets")]
    assert len(_user_files()) >= 3 and len(_examples()) >= 10
    proc = check(files, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("check", list(_checkers()))
def test_the_checker_reports_a_wrong_type_and_a_stale_ignore(
    check: Checker, tmp_path: Path
) -> None:
    # the harness itself can fail: a wrong assert_type and an ignore with nothing to
    # ignore are both reported
    bad = tmp_path / "bad_user_code.py"
    bad.write_text(
        "import enum\n"
        "from typing_extensions import assert_type\n"
        "from cano_dsl import FunctionTask, Resources, task\n"
        "class Step(enum.Enum):\n"
        "    A = 1\n"
        "@task\n"
        "async def fetch(res: Resources) -> Step:\n"
        "    return Step.A\n"
        "assert_type(fetch, FunctionTask[int])\n"
        "x: int = 1  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]\n",
        encoding="utf-8",
    )
    proc = check([bad], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "bad_user_code.py:9" in out, out
    assert "bad_user_code.py:10" in out, out
