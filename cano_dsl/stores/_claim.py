"""Run claims: one owner per workflow run (docs/recovery.md, "One owner per run").

``orchestrate`` (with a workflow id and a store) and ``resume_from`` claim the run
through the store's optional ``claim(workflow_id)`` before they set up resources or run
a state, and release the claim after teardown. A second claimant gets
`RunClaimedError` at once and runs nothing. A claim dies with its holder, so a resume
right after a SIGKILL is never refused:

* `LocalClaims`: a set of held keys in this process (the in-memory store, and the
  first line of the other stores: an OS record lock and a PostgreSQL session lock do
  not conflict with their own holder).
* `FileClaims` (SQLite): a POSIX byte-range lock on a sidecar file ``<db>-claims``,
  one byte per run at an offset hashed from the id; the kernel drops it when the
  process dies. POSIX record locks are per process and closing *any* descriptor of the
  file drops all of the process's locks on it, so each process keeps one descriptor per
  sidecar (shared by every store object, kept open while a store uses it). Without
  ``fcntl`` (Windows), or when the sidecar cannot be created (a read-only directory,
  where the database cannot be written either), claims are in-process only.
* `PgClaims` (PostgreSQL): a session advisory lock (``pg_try_advisory_lock``) on a
  dedicated autocommit connection of the store; the server drops it when that
  connection closes, which it does when the holder dies. A refusal by the server is
  re-checked for a quarter of a second, so a lock whose holder has just died (its
  backend still exiting) is not reported as held.

Stores without ``claim`` (a user's own store) run unclaimed: `claim_run` returns
``None`` for them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, runtime_checkable

import anyio

from .._errors import CanoError, CheckpointStoreError, RunClaimedError
from ._row import CheckpointStore

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows: claims stay in-process
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ClaimingCheckpointStore",
    "FileClaims",
    "LocalClaims",
    "PgClaims",
    "RunClaim",
    "claim_key",
    "claim_run",
]


@runtime_checkable
class RunClaim(Protocol):
    """A held claim on one workflow run; `release()` gives it up (idempotent)."""

    async def release(self) -> None:
        """Give the run up (idempotent); another owner may claim it after."""


@runtime_checkable
class ClaimingCheckpointStore(CheckpointStore, Protocol):
    """A `CheckpointStore` that can claim a run for one holder at a time.

    ``claim(workflow_id)`` returns a `RunClaim` or raises `RunClaimedError` when another
    process or task holds the run. The claim must die with its holder (a process killed
    with SIGKILL must not leave the run claimed) and must conflict with a second claim
    from the same process."""

    async def claim(self, workflow_id: str) -> RunClaim:
        """Claim ``workflow_id`` for the caller; `RunClaimedError` when it is held elsewhere."""


def claim_key(*parts: str, bits: int = 62) -> int:
    """A stable non-negative ``bits``-bit hash of ``parts`` (blake2b)."""
    h = hashlib.blake2b(digest_size=8, person=b"cano_dsl.claim")
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return int.from_bytes(h.digest(), "big") >> (64 - bits)


def fence_keys(namespace: str, workflow_id: str) -> tuple[int, int]:
    """The two signed 32-bit keys of ``workflow_id``'s *write fence* on PostgreSQL.

    Every write of the PostgreSQL store takes this advisory lock in shared mode for its
    transaction (`pg_advisory_xact_lock_shared`); a new claimant takes it exclusively
    once and lets go, which waits until every transaction that was still writing the
    run (a killed client's ``COMMIT`` still running on the server) has ended. The
    two-key form keeps it apart from the claims' one-key locks."""
    k = claim_key(namespace, "write-fence", workflow_id, bits=64)
    return (k >> 32) - 2**31, (k & 0xFFFFFFFF) - 2**31


class _Claim:
    """The `RunClaim` the shipped stores hand out."""

    __slots__ = ("_release", "_released", "workflow_id")

    def __init__(self, workflow_id: str, release: Callable[[], Awaitable[None]]) -> None:
        self.workflow_id = workflow_id
        self._release = release
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<RunClaim {self.workflow_id!r} {state}>"


async def claim_run(store: Any, workflow_id: str) -> RunClaim | None:
    """Claim ``workflow_id`` through ``store.claim`` (``None`` for a store without
    one). `RunClaimedError` (any cano error) passes through; any other failure becomes
    a `CheckpointStoreError` naming the run."""
    claim = getattr(store, "claim", None)
    if not callable(claim):
        return None
    try:
        held: RunClaim = await claim(workflow_id)
    except CanoError:
        raise
    except Exception as exc:
        raise CheckpointStoreError(f"claim workflow run {workflow_id!r}: {exc}") from exc
    if not callable(getattr(held, "release", None)):
        raise CheckpointStoreError(
            f"claim workflow run {workflow_id!r}: {type(store).__qualname__}.claim returned "
            f"{held!r}, which has no release() method"
        )
    return held


# -- in process ------------------------------------------------------------------------


class LocalClaims:
    """Claims held in this process: a thread-safe set of keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[Hashable] = set()

    def take(self, key: Hashable) -> bool:
        """Hold ``key``; ``False`` if it is already held."""
        with self._lock:
            if key in self._held:
                return False
            self._held.add(key)
            return True

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._held.discard(key)

    def claim(self, workflow_id: str, detail: str = "") -> RunClaim:
        """A claim on ``workflow_id`` in this set, or `RunClaimedError`."""
        if not self.take(workflow_id):
            raise RunClaimedError(workflow_id, detail)

        async def release() -> None:
            self.drop(workflow_id)

        return _Claim(workflow_id, release)


# -- SQLite: byte-range locks on a sidecar file ---------------------------------------


class _LockFile:
    """One process-wide descriptor of a sidecar: the offsets held, and how many open
    stores keep it open (it is closed when both are zero)."""

    __slots__ = ("fd", "held", "path", "users")

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd
        self.held: set[int] = set()
        self.users = 0

    def close_if_unused(self) -> None:  # under _FILES_LOCK
        if not self.users and not self.held:
            # closing drops every lock of this process on the file: only when none is held
            del _FILES[self.path]
            if self.fd is not None:
                os.close(self.fd)


def _unuse(lf: _LockFile) -> None:
    """A store stopped keeping ``lf`` open (closed, or garbage-collected)."""
    with _FILES_LOCK:
        lf.users -= 1
        lf.close_if_unused()


# reentrant: a garbage-collected store's finalizer may run inside a critical section
_FILES_LOCK = threading.RLock()
_FILES: dict[str, _LockFile] = {}
_BUSY = frozenset({errno.EACCES, errno.EAGAIN})
_READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class FileClaims:
    """Claims on the runs of one SQLite file, as locks on ``<realpath>-claims``
    (in-process only for ``":memory:"`` and ``""``, whose database is private).

    The sidecar is opened once (in a worker thread) and kept open until `close()`;
    a claim and its release are then one non-blocking ``fcntl`` call each."""

    def __init__(self, db_path: str) -> None:
        self._db_path = db_path
        self._local = LocalClaims() if db_path in ("", ":memory:") else None
        self._file: _LockFile | None = None
        self._unuse: Callable[[], object] | None = None
        self._closed = False

    def _open(self) -> _LockFile:
        """The process-wide descriptor of this file's sidecar, opened if need be."""
        path = os.path.realpath(self._db_path) + "-claims"
        with _FILES_LOCK:
            lf = _FILES.get(path)
            if lf is None:
                fd: int | None
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
                except OSError as exc:
                    if exc.errno not in _READ_ONLY:
                        raise CheckpointStoreError(
                            f"cannot open the claims file {path}: {exc}; it must be "
                            "writable beside the database"
                        ) from exc
                    # a read-only directory: the database cannot be written either (WAL
                    # needs its -wal and -shm files), so claims within this process do
                    fd = None
                lf = _FILES[path] = _LockFile(path, fd)
            lf.users += 1
            return lf

    def _take(self, lf: _LockFile, workflow_id: str) -> int:
        offset = claim_key(workflow_id)
        with _FILES_LOCK:
            if offset in lf.held:
                raise RunClaimedError(workflow_id, "by another task of this process")
            if fcntl is not None and lf.fd is not None:
                try:
                    fcntl.lockf(lf.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
                except OSError as exc:
                    if exc.errno in _BUSY:
                        raise RunClaimedError(
                            workflow_id, f"by another process: a lock in {lf.path}"
                        ) from None
                    raise CheckpointStoreError(
                        f"claim workflow run {workflow_id!r}: lock {lf.path}: {exc}"
                    ) from exc
            lf.held.add(offset)
        return offset

    @staticmethod
    def _drop(lf: _LockFile, offset: int) -> None:
        with _FILES_LOCK:
            if offset not in lf.held:
                return
            lf.held.discard(offset)
            if fcntl is not None and lf.fd is not None:
                fcntl.lockf(lf.fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
            lf.close_if_unused()

    async def _sidecar(self) -> _LockFile:
        lf = self._file
        if lf is not None:
            return lf
        with anyio.CancelScope(shield=True):  # an opened file must be recorded
            opened: _LockFile = await anyio.to_thread.run_sync(self._open)
        with _FILES_LOCK:
            if self._file is None and not self._closed:
                self._file = opened
                self._unuse = weakref.finalize(self, _unuse, opened)  # closed or collected
                return opened
            opened.users -= 1  # another task opened it meanwhile, or the store closed
            opened.close_if_unused()
        if self._file is None:
            raise CheckpointStoreError(f"the claims of {self._db_path} are closed")
        return self._file

    async def claim(self, workflow_id: str) -> RunClaim:
        if self._local is not None:
            return self._local.claim(workflow_id, "by another task on this store")
        lf = await self._sidecar()
        offset = self._take(lf, workflow_id)  # one non-blocking fcntl call: inline

        async def release() -> None:
            self._drop(lf, offset)

        return _Claim(workflow_id, release)

    def close(self) -> None:
        """Stop keeping the sidecar open (claims still held keep it until released).
        Idempotent."""
        self._closed = True
        self._file = None
        if self._unuse is not None:
            self._unuse()  # a weakref.finalize: runs once


# -- PostgreSQL: session advisory locks -----------------------------------------------


class _Ticket:
    """One claim attempt, shared by the loop (which may give up on it) and the worker
    thread (which may still get the lock): its own small lock, never held while the
    server is asked, so the loop never waits on the server through it."""

    __slots__ = ("abandoned", "acquired", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.acquired = False

    def give_up(self) -> bool:
        """Mark abandoned; whether the lock had been taken already."""
        with self.lock:
            self.abandoned = True
            return self.acquired


class _Busy(Exception):
    """Another session holds the advisory lock (for now)."""


# How long a refusal by the server is re-checked: a holder that has just died still
# holds its lock until its backend notices the closed socket (milliseconds).
_PG_GRACE = 0.25
# How long a release (or closing the claims) waits for the server before going on.
_PG_LET_GO = 2.0


class PgClaims:
    """Session advisory locks on one dedicated autocommit connection.

    ``connect()`` opens that connection (autocommit); ``namespace`` (the table) keeps
    two stores on one database apart; ``timeout`` bounds each call to the server."""

    def __init__(
        self,
        connect: Callable[[], Any],
        errors: type[BaseException] | tuple[type[BaseException], ...],
        namespace: str,
        where: str,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._errors = errors
        self._namespace = namespace
        self._where = where
        self._timeout = timeout
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._conn: Any = None

    def key(self, workflow_id: str) -> int:
        """The signed 64-bit advisory-lock key of ``workflow_id``."""
        return claim_key(self._namespace, workflow_id, bits=64) - 2**63

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._close_connection()
            try:
                self._conn = conn = self._connect()
            except self._errors as exc:
                raise CheckpointStoreError(
                    f"postgres {self._where}: cannot connect (to claim a run): {exc}"
                ) from exc
        return conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._errors:
                pass

    def _take(self, workflow_id: str, key: int, ticket: _Ticket) -> None:
        with self._lock:
            if key in self._held:
                raise RunClaimedError(workflow_id, "by another task of this process")
            if not self._try_lock(workflow_id, key):
                raise _Busy
            with ticket.lock:
                keep = not ticket.abandoned
                ticket.acquired = keep
            if keep:
                self._held.add(key)
            else:  # the caller gave up waiting: do not keep it
                self._unlock(key)
                return
        if not self._wait_for_fence(workflow_id):
            self._release(key)
            raise RunClaimedError(
                workflow_id,
                f"by a previous owner whose write is still in flight on {self._where} "
                f"(waited {self._timeout:g}s for its transaction to end)",
            )

    def _try_lock(self, workflow_id: str, key: int) -> bool:
        for attempt in (1, 2):
            conn = self._conn
            reused = conn is not None and not conn.closed and not conn.broken
            try:
                row = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (key,))
                return bool(row.fetchone()[0])
            except self._errors as exc:
                self._close_connection()  # its session, and any lock it held, is gone
                if not reused or attempt == 2:
                    raise CheckpointStoreError(
                        f"postgres {self._where}: claim workflow run {workflow_id!r}: {exc}"
                    ) from exc
                # a connection that died while idle (server restart, terminated
                # backend): try once more on a fresh one
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_fence(self, workflow_id: str) -> bool:
        """Wait (at most the call bound) until no transaction holds ``workflow_id``'s
        write fence: a previous owner's write still running on the server (a killed
        client's ``COMMIT``) lands before this owner reads the log. False on time-out."""
        a, b = fence_keys(self._namespace, workflow_id)
        # a little inside the caller's bound, so the caller hears why
        deadline = time.monotonic() + max(0.1, self._timeout - 1.0)
        while True:
            with self._lock:
                try:
                    conn = self._connection()
                    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (a, b)).fetchone()
                    if row[0]:
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (a, b))
                        return True
                except self._errors as exc:
                    self._close_connection()  # the claim went with the session
                    self._held.clear()
                    raise CheckpointStoreError(
                        f"postgres {self._where}: claim workflow run {workflow_id!r}: {exc}"
                    ) from exc
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _unlock(self, key: int) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return  # the session is gone, and its locks with it
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except self._errors:
            self._close_connection()  # dropping the session frees its locks

    def _release(self, key: int) -> None:
        with self._lock:
            if key in self._held:
                self._unlock(key)
                self._held.discard(key)

    async def _bounded(self, timeout: float, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn`` in a worker thread, waiting at most ``timeout``; ``False`` if the
        wait was abandoned (the thread still finishes its work later)."""
        with anyio.move_on_after(timeout):
            await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
            return True
        return False

    async def _release_soon(self, key: int) -> None:
        """Unlock ``key``; wait for it at most `_PG_LET_GO` (a frozen server must not
        hold the caller: an abandoned unlock still runs when the server answers, and
        the key stays claimed in this process until it has)."""
        with anyio.CancelScope(shield=True):
            await self._bounded(_PG_LET_GO, self._release, key)

    async def claim(self, workflow_id: str) -> RunClaim:
        key = self.key(workflow_id)
        ticket = _Ticket()
        give_up = anyio.current_time() + _PG_GRACE
        try:
            while True:
                try:
                    done = await self._bounded(self._timeout, self._take, workflow_id, key, ticket)
                    break
                except _Busy:
                    if anyio.current_time() >= give_up:
                        raise RunClaimedError(
                            workflow_id,
                            f"by another session: advisory lock {key} on {self._where}",
                        ) from None
                    await anyio.sleep(0.05)
        except RunClaimedError:
            raise
        except BaseException:
            if ticket.give_up():
                await self._release_soon(key)
            raise
        if not done and not ticket.give_up():
            raise CheckpointStoreError(
                f"postgres {self._where}: claim workflow run {workflow_id!r}: no answer "
                f"from the server within {self._timeout:g}s"
            )

        async def release() -> None:
            await self._release_soon(key)

        return _Claim(workflow_id, release)

    def _close_all(self) -> None:
        with self._lock:
            self._held.clear()
            conn = self._conn
            if conn is not None and not conn.closed and not conn.broken:
                try:  # at once, rather than when the server notices the close
                    conn.execute("SELECT pg_advisory_unlock_all()")
                except self._errors:
                    pass
            self._close_connection()

    async def aclose(self) -> None:
        """Close the claims connection (the server drops every claim it held)."""
        with anyio.CancelScope(shield=True):
            await self._bounded(_PG_LET_GO, self._close_all)
