"""The ``cano-dsl`` command line (also ``python -m cano_dsl``).

Subcommands: ``run``, ``validate``, ``graph``, ``runs list``, ``runs show``,
``runs report``, ``runs resume``; ``--version``. ``run`` and ``runs resume`` print a
progress line per state on standard error (``--quiet`` silences them), and Ctrl-C
ends a run with exit status 130 and a resume hint when a checkpoint log was written.
Standard library only (argparse). See docs/cli.md.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ["main"]
