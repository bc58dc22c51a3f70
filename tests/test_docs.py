"""The README's set-up commands, CI's test command and every Python snippet in the
README and docs/ are kept honest here, and the built site is checked to render them.

Fences: every ```` ```python ```` fence is executed. A Python fence that must not run is
written ```` ```python {.no-run} ```` (an attribute list pymdownx.superfences renders);
shell lines go in ```` ```bash ```` fences and sessions with output in ```` ```console ````,
which are never executed. A bare word after the language (```` ```bash no-run ````) is
not a fence to superfences: the page would show it as text, which the render tests catch.
"""

from __future__ import annotations

import ast
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
SHELL = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
DOCS = ROOT / "docs"


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


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip(
        "tomllib", reason="reads pyproject.toml with Python 3.11's tomllib"
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_extras_split_test_lint_docs_and_dev_has_them_all() -> None:
    extras = _extras()
    assert not _names(extras["test"]) & {"ruff", "mypy", "mkdocs-material", "mkdocstrings"}
    assert {"pytest", "hypothesis", "opentelemetry-sdk"} <= _names(extras["test"])
    assert {"ruff", "mypy"} <= _names(extras["lint"])
    assert {"mkdocs-material", "mkdocstrings"} <= _names(extras["docs"])
    dev = {e for r in extras["dev"] for e in re.findall(r"cano-dsl\[([^\]]*)\]", r)}
    assert {"test", "lint", "docs"} <= {e.strip() for group in dev for e in group.split(",")}


def test_ci_installs_its_tools_before_it_runs_them() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line and ".[dev]" in line)
    for tool in ("ruff check", "mypy --strict", "mkdocs build"):
        assert install < next(i for i, line in enumerate(lines) if tool in line), tool


def test_ci_names_only_files_that_exist() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    paths = re.findall(r"(?<![\w/])((?:tests|\.ci|examples|benchmarks|docs)/[\w./-]*\w)", ci)
    assert paths, "expected .ci/run to name the files it relies on"
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_install_lines_work_from_a_checkout() -> None:
    """cano-dsl is not on PyPI yet: every install line installs the checkout, with
    extras that exist."""
    extras = _extras()
    lines = [
        line.strip()
        for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
        for block in SHELL.findall(path.read_text(encoding="utf-8"))
        for line in block.splitlines()
        if "pip install" in line
    ]
    assert lines
    for line in lines:
        assert "pip install -e ." in line or "pip install -e '." in line, line
        for group in re.findall(r"\.\[([^\]]+)\]", line):
            assert {e.strip() for e in group.split(",")} <= set(extras), line


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
    # counted from what happened: the tax service fails once, the payment gateway twice
    assert "(5 tax calls, 1 item retry)" in proc.stdout
    assert "task retries (from the recorded events): charge x2" in proc.stdout
    assert (tmp_path / "d.sqlite3").exists()  # --db keeps the file


def test_demo_without_db_leaves_no_file_behind(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path) in proc.stdout  # it did checkpoint under the temp dir
    assert list(tmp_path.iterdir()) == []


def test_demo_imports_public_names_only() -> None:
    tree = ast.parse((ROOT / "examples" / "demo.py").read_text(encoding="utf-8"))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    private = [m for m in modules if m != "__future__" and "._" in f".{m}"]
    assert private == []


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


# --- the built site -------------------------------------------------------------------

FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
HTML_HEADING = re.compile(r"<h([1-6])[^>]*>(.*?)</h\1>", re.S)
PRE = re.compile(r"<pre\b.*?</pre>", re.S)
TAG = re.compile(r"<[^>]+>")


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _html_for(site: Path, page: Path) -> str:
    rel = page.relative_to(DOCS).with_suffix("")
    out = site / rel.parent / "index.html" if rel.name == "index" else site / rel / "index.html"
    return out.read_text(encoding="utf-8")


def _outside_fences(text: str) -> tuple[list[str], int]:
    """The lines of a markdown page outside its fences, and how many fences it has."""
    lines: list[str] = []
    fences = 0
    closing: str | None = None
    for line in text.splitlines():
        m = FENCE_LINE.match(line)
        if closing is None:
            if m:
                closing, fences = m.group(1), fences + 1
            else:
                lines.append(line)
        elif m and m.group(1).startswith(closing) and not line.strip()[len(m.group(1)) :]:
            closing = None
    return lines, fences


def _plain(markup: str) -> str:
    """Heading text as a reader sees it: no tags, permalinks, code or link syntax."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markup)
    text = html.unescape(TAG.sub("", text)).replace("\u00b6", "")
    return " ".join(text.replace("`", "").replace("*", "").split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built once with ``mkdocs build --strict`` (needs the ``docs`` extra)."""
    pytest.importorskip("mkdocs", reason="the docs extra is needed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is needed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is needed")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}"
    return out


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_built_page_renders_every_fence_as_code(site: Path, page: Path) -> None:
    _, fences = _outside_fences(page.read_text(encoding="utf-8"))
    built = _html_for(site, page)
    article = built[built.index("<article") : built.index("</article>")]
    prose = PRE.sub("", article)
    for raw in ("```", "~~~"):
        assert raw not in prose, (
            f"{page.relative_to(ROOT)}: a fence rendered as text near "
            f"{prose[max(prose.index(raw) - 80, 0) : prose.index(raw) + 80]!r}; "
            "write ```python {.no-run}, ```bash or ```console, not a bare word after the language"
        )
    assert len(PRE.findall(article)) >= fences, (
        f"{page.relative_to(ROOT)}: {fences} fences in the markdown, "
        f"{len(PRE.findall(article))} code blocks in the HTML"
    )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_built_page_has_every_markdown_heading(site: Path, page: Path) -> None:
    lines, _ = _outside_fences(page.read_text(encoding="utf-8"))
    wanted = [(len(m.group(1)), _plain(m.group(2))) for m in map(HEADING.match, lines) if m]
    built = _html_for(site, page)
    article = built[built.index("<article") : built.index("</article>")]
    found = {(int(level), _plain(text)) for level, text in HTML_HEADING.findall(article)}
    missing = [f"{'#' * level} {text}" for level, text in wanted if (level, text) not in found]
    assert not missing, f"{page.relative_to(ROOT)}: headings missing from the HTML: {missing}"


# pages about measurements or the examples rather than one part of the API
NOT_API_PAGES = {"performance.md", "examples.md"}


@pytest.mark.parametrize(
    "page",
    [p for p in _pages() if p.parts[len(DOCS.parts)] != "api"],
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_concept_page_links_to_the_api_reference(page: Path) -> None:
    if str(page.relative_to(DOCS)) in NOT_API_PAGES:
        pytest.skip("not about one part of the API")
    links = re.findall(r"\]\(((?:\.\./)*api/[^)#]+\.md)(?:#[^)]*)?\)", page.read_text("utf-8"))
    assert links, f"{page.relative_to(ROOT)} does not link to its page under docs/api/"
    for link in links:
        assert (page.parent / link).resolve().is_file(), f"{page.relative_to(ROOT)}: {link}"
