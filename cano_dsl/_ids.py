"""Workflow ids: the one check every entry point applies before an id reaches a store.

A workflow id is a non-empty `str` of at most `MAX_WORKFLOW_ID_BYTES` bytes once
encoded as UTF-8, that *can* be encoded as UTF-8 (no lone surrogates, which is what
``os.fsdecode`` gives for a file name that is not UTF-8) and holds no NUL character
(PostgreSQL text cannot store one; C APIs cut the string there). The limit keeps the
``(workflow_id, sequence)`` primary key well inside PostgreSQL's B-tree entry limit
(about 2,700 bytes) and SQLite's in-page key size, so no id is accepted by one store and
refused by another.

Anything else is a `ConfigurationError` at the call that receives it
(`Workflow.with_workflow_id`, `Workflow.resume_from`, a store's ``append`` /
``load_run`` / ``clear``), before any I/O, so a bad id never enters a store's batch.
"""

from __future__ import annotations

from ._errors import ConfigurationError

__all__ = ["MAX_WORKFLOW_ID_BYTES", "check_workflow_id"]

MAX_WORKFLOW_ID_BYTES = 1024
"""The longest workflow id accepted, in bytes of its UTF-8 encoding."""

_ALLOWED = (
    f"a workflow id must be a non-empty str of at most {MAX_WORKFLOW_ID_BYTES} UTF-8 bytes, "
    "encodable as UTF-8 (no lone surrogates) and without NUL characters"
)


def check_workflow_id(value: object, where: str) -> str:
    """Return ``value`` (as a plain `str`) if it is a valid workflow id, else raise
    `ConfigurationError` naming ``where`` (the call that received it), what is wrong and
    what is allowed."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{where}: {_ALLOWED}; got {type(value).__name__} {_show(value)}"
            )
        value = str.__str__(value)  # a str subclass: store the plain text it holds
    if not value:
        raise ConfigurationError(f"{where}: {_ALLOWED}; got an empty str")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise ConfigurationError(
            f"{where}: {_ALLOWED}; got {_show(value)}, whose character {bad!r} at index "
            f"{exc.start} cannot be encoded as UTF-8 (decode file names with a real encoding, "
            "or escape them, before using them as ids)"
        ) from None
    if "\x00" in value:
        raise ConfigurationError(
            f"{where}: {_ALLOWED}; got {_show(value)}, with a NUL at index {value.index(chr(0))}"
        )
    if size > MAX_WORKFLOW_ID_BYTES:
        raise ConfigurationError(f"{where}: {_ALLOWED}; got {size} bytes ({_show(value)})")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]}"
