"""The batch manifest: one SQLite row per file of a catalog, written by one process.

Only the parent process of :func:`nowm.mark_catalog` writes it, one short
transaction per file, with ``synchronous=FULL`` and SQLite's rollback journal: a
batch killed at any point leaves every committed row intact and the row of a file
that was being marked in state ``running``, which a re-run redoes.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from .errors import AudioIOError, ParameterError

SCHEMA_VERSION = 1

_COLUMNS = (
    "rel",            # path relative to SRC_DIR, '/'-separated (primary key)
    "src_path", "src_size", "src_mtime_ns", "src_sha256",
    "out_path", "out_size", "out_mtime_ns", "out_sha256",
    "policy", "owner",
    "verified",       # 1 output detected with the expected policy (and owner), 0 failed, NULL not checked
    "verify_detail",  # what detection read from the output
    "status",         # running | marked | already-marked | conflict | skipped | copied | failed
    "error",          # reason of a failure, conflict or skip
    "attempts",       # how many times marking was started
    "started_at", "finished_at",  # UTC, ISO 8601
)

_CREATE = f"""
CREATE TABLE IF NOT EXISTS files (
  rel TEXT PRIMARY KEY,
  src_path TEXT, src_size INTEGER, src_mtime_ns INTEGER, src_sha256 TEXT,
  out_path TEXT, out_size INTEGER, out_mtime_ns INTEGER, out_sha256 TEXT,
  policy TEXT, owner INTEGER, verified INTEGER, verify_detail TEXT,
  status TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
  started_at TEXT, finished_at TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
PRAGMA user_version = {SCHEMA_VERSION};
"""


def _upsert(fields: dict) -> str:
    """INSERT-or-UPDATE of one ``files`` row with these columns."""
    cols = ["rel", *fields]
    sets = ", ".join(f"{c} = excluded.{c}" for c in fields) or "rel = rel"
    return (f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT(rel) DO UPDATE SET {sets}")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Manifest:
    """Rows of one batch, keyed by the source's relative path.

    Parameters
    ----------
    path : path
        SQLite file; created if missing (with its folder) unless ``readonly``.
    identity : dict
        ``src_dir``, ``out_dir`` and ``mode`` of the batch; a manifest written by
        another batch is refused rather than mixed up.
    readonly : bool
        For ``--dry-run``: read the rows of an existing manifest, write nothing.
    """

    def __init__(self, path, identity: dict, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._db = None
        if readonly:
            if not self.path.exists():
                return
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = self._connect(uri, uri=True)
            self._check_identity(identity, write=False)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioIOError(f"{self.path}: cannot create the manifest's folder ({exc.strerror or exc})") from None
        self._db = self._connect(str(self.path))
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_CREATE)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ParameterError(f"{self.path}: not a nowm manifest ({exc}); choose another --manifest") from None
        self._check_identity(identity, write=True)

    def _connect(self, target, uri=False):
        try:
            return sqlite3.connect(target, uri=uri, timeout=30.0)
        except sqlite3.Error as exc:
            raise AudioIOError(f"{self.path}: cannot open the manifest ({exc})") from None

    def _check_identity(self, identity: dict, write: bool) -> None:
        try:
            have = dict(self._db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            raise ParameterError(f"{self.path}: not a nowm manifest ({exc}); choose another --manifest") from None
        for k, v in identity.items():
            if k in have and have[k] != str(v):
                raise ParameterError(
                    f"{self.path}: this manifest belongs to another batch ({k} = {have[k]}, not {v}); "
                    "give this batch its own --manifest")
        if write:
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                     [(k, str(v)) for k, v in identity.items()])

    def rows(self) -> dict:
        """Every row as a dict, keyed by ``rel``."""
        if self._db is None:
            return {}
        cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files")
        return {r[0]: dict(zip(_COLUMNS, r)) for r in cur}

    def put(self, rel: str, **fields) -> None:
        """Insert or update the row of ``rel`` with ``fields``, in one transaction."""
        if self._db is None or self.readonly:
            return
        bad = set(fields) - set(_COLUMNS)
        if bad:
            raise ValueError(f"unknown manifest columns {sorted(bad)}")
        try:
            with self._db:
                self._db.execute(_upsert(fields), [rel, *fields.values()])
        except sqlite3.Error as exc:
            raise AudioIOError(f"{self.path}: cannot write the manifest ({exc}); check free space and "
                               "permissions, then run the same command again to resume") from None

    def start(self, rel: str, **fields) -> None:
        """Record that marking ``rel`` starts (status ``running``, one more attempt)."""
        if self._db is None or self.readonly:
            return
        prev = self._db.execute("SELECT attempts FROM files WHERE rel = ?", (rel,)).fetchone()
        self.put(rel, status="running", error=None, started_at=now(), finished_at=None,
                 attempts=(prev[0] if prev else 0) + 1, **fields)

    def start_many(self, rows) -> None:
        """:meth:`start` for many files in one transaction; ``rows`` holds
        ``(rel, fields)`` pairs."""
        if self._db is None or self.readonly:
            return
        with self._db:
            for rel, fields in rows:
                prev = self._db.execute("SELECT attempts FROM files WHERE rel = ?", (rel,)).fetchone()
                fields = dict(status="running", error=None, started_at=now(), finished_at=None,
                              attempts=(prev[0] if prev else 0) + 1, **fields)
                try:
                    self._db.execute(_upsert(fields), [rel, *fields.values()])
                except sqlite3.Error as exc:
                    raise AudioIOError(f"{self.path}: cannot write the manifest ({exc}); check free space "
                                       "and permissions, then run the same command again") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
