"""The README's set-up commands, CI's test command and every Python snippet in the
README and docs/ are kept honest here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
SHELL = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def _snippets() -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for i, match in enumerate(FENCE.finditer(text)):
            header = text[match.start() : text.index("\n", match.start())]
            if "no-run" in header:
                continue
            out.append((str(path.relative_to(ROOT)), i, match.group(1)))
    return out


def test_readme_first_two_commands_install_demo_and_tests() -> None:
    commands = [b.strip() for b in SHELL.findall((ROOT / "README.md").read_text())]
    assert commands[0] == "pip install -e . && python examples/demo.py"
    assert commands[1] == "pip install -e '.[test]' && python -m pytest -q"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme_test = SHELL.findall((ROOT / "README.md").read_text())[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_test in ci.splitlines()
    for check in ("ruff check", "ruff format --check", "mypy --strict cano_dsl"):
        assert check in ci


def test_demo_runs_and_resumes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--db", str(tmp_path / "d.sqlite3")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "failed in EXPRESS: warehouse offline" in proc.stdout
    assert "path: EXPRESS -> SHIPPED" in proc.stdout
    assert "log cleared: True" in proc.stdout


@pytest.mark.parametrize(
    ("where", "index", "code"),
    _snippets(),
    ids=lambda v: str(v) if not isinstance(v, str) or len(v) < 60 else "code",
)
def test_doc_snippet_runs(where: str, index: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, f"{where} snippet #{index} failed:\n{proc.stderr}"
