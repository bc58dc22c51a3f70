"""The otel extra stays optional: importing cano_dsl never imports OpenTelemetry, and
a missing extra says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_package_does_not_import_opentelemetry() -> None:
    proc = _run(
        """
        import sys
        import cano_dsl
        import cano_dsl.observability
        from cano_dsl.observability import LoggingObserver
        LoggingObserver().on_state_enter("A")
        leaked = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not leaked, leaked
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_a_missing_extra_raises_import_error_naming_it() -> None:
    proc = _run(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from cano_dsl.observability import LoggingObserver  # still fine
        for name in ("MetricsObserver", "TracingObserver"):
            try:
                exec(f"from cano_dsl.observability import {name}")
            except ImportError as exc:
                assert "pip install 'cano-dsl[otel]'" in str(exc), str(exc)
                assert name in str(exc), str(exc)
            else:
                raise AssertionError(f"{name} imported without opentelemetry")
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
