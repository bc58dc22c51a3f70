"""The ``cano-dsl`` command line (also ``python -m cano_dsl``).

Subcommands: ``run``, ``validate``, ``graph``, ``runs list``, ``runs show``,
``runs resume``. Standard library only (argparse). See docs/cli.md.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ["main"]
