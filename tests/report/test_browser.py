"""The run report in a real browser: headless Chromium (Debian's `chromium`, installed
by .ci/run) opens the file, runs its script without a console error, lays out the graph
and the timeline visibly, and takes a screenshot (kept under the test's tmp dir).

Console errors are collected by a probe script put at the top of a copy of the page: it
records `error` events and `console.error` calls, and after `load` writes what it saw
(and the size of the graph and the timeline) on the root element, which `--dump-dom`
prints. A page with a deliberate error checks that the probe sees one."""

from __future__ import annotations

import enum
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import RetryMode, TaskConfig, Workflow, task
from cano_dsl.report import render
from cano_dsl.testing import RecordingObserver
from cano_dsl.workflow import JoinConfig, JoinStrategy

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: bash .ci/run installs Debian's `chromium` package "
    "(apt-get install chromium) where it can",
)

PROBE = """<script>
(function () {
  var seen = [];
  window.addEventListener('error', function (e) { seen.push('error: ' + e.message); });
  var original = console.error;
  console.error = function () {
    seen.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
  function box(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var r = el.getBoundingClientRect(), st = getComputedStyle(el);
    return {w: r.width, h: r.height, shown: st.display !== 'none' && st.visibility !== 'hidden'};
  }
  window.addEventListener('load', function () {
    document.documentElement.setAttribute('data-probe', JSON.stringify({
      errors: seen, graph: box('graph'), timeline: box('timeline'),
      nodes: document.querySelectorAll('#graph .node').length,
      rows: document.querySelectorAll('#timeline .row').length
    }));
  });
})();
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def probe(page: Path, tmp_path: Path) -> dict[str, Any]:
    html = page.read_text("utf-8")
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1), "utf-8")
    proc = chromium(
        "--virtual-time-budget=3000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile"
    )
    found = re.search(r"data-probe=\"([^\"]*)\"", proc.stdout)
    assert found, f"no probe result in the DOM:\n{proc.stdout[:2000]}\n{proc.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&amp;", "&")
    result: dict[str, Any] = json.loads(text)
    return result


def screenshot(page: Path, shot: Path, tmp_path: Path) -> None:
    proc = chromium(
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        "--hide-scrollbars",
        page.as_uri(),
        profile=tmp_path / "profile-shot",
    )
    assert shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, "the screenshot is (nearly) blank"


class S(enum.Enum):
    FETCH = enum.auto()
    ENRICH = enum.auto()
    STORE = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="fetch")
async def fetch() -> S:
    await anyio.sleep(0.05)
    return S.ENRICH


@task(config=TaskConfig.minimal(), name="geo")
async def geo() -> None:
    await anyio.sleep(0.05)


@task(config=TaskConfig().with_retry(RetryMode.fixed(1, 0.02)), name="store")
async def store() -> S:
    await anyio.sleep(0.02)
    if store:  # always: the run fails here after one retry
        raise ConnectionError("database is read-only")
    return S.DONE


def failed_run_report() -> str:
    wf = (
        Workflow.bare()
        .register(S.FETCH, fetch)
        .register_split(S.ENRICH, [geo, geo], JoinConfig(JoinStrategy.all(), S.STORE))
        .register(S.STORE, store)
        .add_exit_state(S.DONE)
    )
    rec = RecordingObserver()
    try:
        wf.with_observer(rec).run_sync(S.FETCH)
    except Exception as exc:
        return render(rec, workflow=wf, error=exc, workflow_id="order-7")
    raise AssertionError("the run was meant to fail")


def test_the_probe_sees_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head></head><body><script>console.error('seen');"
        "no_such_function();</script></body></html>",
        "utf-8",
    )
    errors = probe(page, tmp_path)["errors"]
    assert "console.error: seen" in errors
    assert any("no_such_function" in e for e in errors)


def test_a_timed_report_opens_without_errors_and_shows_graph_and_timeline(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    page.write_text(failed_run_report(), "utf-8")
    seen = probe(page, tmp_path)
    assert seen["errors"] == []
    for part in ("graph", "timeline"):
        assert seen[part] is not None, f"#{part} is missing"
        assert seen[part]["shown"] and seen[part]["w"] > 300 and seen[part]["h"] > 80, seen
    assert seen["nodes"] == 4  # FETCH, ENRICH, STORE, DONE
    assert seen["rows"] == 5  # FETCH, ENRICH and its two branches, STORE
    screenshot(page, tmp_path / "run.png", tmp_path)


def test_a_report_from_a_log_opens_without_errors(tmp_path: Path) -> None:
    from cano_dsl import CheckpointRow

    rows = [CheckpointRow(0, "FETCH", "fetch"), CheckpointRow(1, "STORE", "store")]
    page = tmp_path / "log.html"
    page.write_text(render(rows=rows, workflow_id="order-8"), "utf-8")
    seen = probe(page, tmp_path)
    assert seen["errors"] == []
    assert seen["graph"]["shown"] and seen["graph"]["w"] > 200
    assert seen["timeline"]["shown"] and seen["timeline"]["h"] > 20
    screenshot(page, tmp_path / "log.png", tmp_path)
