"""Catalog marking: every audio file of a folder tree, resumable, parallel, crash-safe.

:func:`mark_catalog` mirrors ``SRC_DIR`` into ``DST_DIR`` (or marks in place),
marking each audio file in its own format with :func:`nowm.files.embed_file`,
verifying each output by detecting it, and recording every file in a SQLite
manifest (:mod:`nowm._manifest`) so that a re-run resumes.

Crash safety rests on three rules:

* an output only ever appears under its final name complete and verified: it is
  written to a hidden ``.NAME.nowm-partial.EXT`` in the same folder, fsynced,
  detected, then renamed (``os.replace``) and the folder fsynced;
* in place, the original is first copied (atomically) to ``.nowm-backup/`` and
  then replaced by one rename, so either the original or the marked file is there;
* the manifest row is committed after the rename; a row left ``running`` by a
  killed batch is redone from the original (or, in place, recognised as done).

Partial files left by a killed batch are removed by the next run. Marking is
deterministic, so a file redone after a crash is still marked exactly once.
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import hashlib
import os
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ._manifest import Manifest, now
from .errors import NowmError, ParameterError
from .policy import DEFAULT_POLICY, get_policy

__all__ = ["mark_catalog", "CatalogReport", "FileResult", "load_owners", "AUDIO_SUFFIXES"]

#: Suffixes treated as audio (lower case): libsndfile's formats, plus M4A/AAC via PyAV.
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".bwf", ".rf64", ".w64", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".m4a", ".m4b", ".mp4", ".aac",
})
BACKUP_DIR = ".nowm-backup"
MANIFEST_NAME = ".nowm-manifest.sqlite"
_PARTIAL = ".nowm-partial"
_DONE = ("marked", "already-marked")
#: Statuses that make :attr:`CatalogReport.exit_status` 3.
FAILING = ("failed", "conflict")


# --------------------------------------------------------------------------- report

@dataclass
class FileResult:
    """What happened to one file of the catalog."""

    rel: str
    status: str  # marked, already-marked, up-to-date, conflict, skipped, copied, failed,
    #              would-mark, would-copy (dry run)
    src: str
    dst: str | None = None
    reason: str | None = None
    policy: str | None = None
    owner: int | None = None
    duration: float | None = None
    verified: bool | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CatalogReport:
    """The outcome of :func:`mark_catalog`: one :class:`FileResult` per file found.

    ``exit_status`` is 0, or 3 when a file failed or was left alone because it
    carries another policy (a conflict).
    """

    src_dir: str
    out_dir: str
    manifest: str | None
    policy: str
    in_place: bool
    dry_run: bool
    jobs: int
    files: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    elapsed: float = 0.0
    audio_seconds: float = 0.0
    peak_worker_rss: int = 0  # bytes, largest resident set of a marking process

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def counts(self) -> dict:
        out: dict = {}
        for f in self.files:
            out[f.status] = out.get(f.status, 0) + 1
        return out

    @property
    def failed(self) -> list:
        return [f for f in self.files if f.status == "failed"]

    @property
    def exit_status(self) -> int:
        return 3 if any(f.status in FAILING for f in self.files) else 0

    def summary(self) -> str:
        """A few lines for people: counts, speed, then every failure with its reason."""
        order = ("marked", "already-marked", "up-to-date", "copied", "skipped", "conflict",
                 "failed", "would-mark", "would-copy")
        c = self.counts
        parts = [f"{c[s]} {s}" for s in order if c.get(s)]
        head = "dry run: " if self.dry_run else ""
        lines = [f"nowm batch: {head}{', '.join(parts) or 'no files'} "
                 f"({len(self.files)} files, {self.elapsed:.1f} s)"]
        done = c.get("marked", 0) + c.get("already-marked", 0)
        if done and self.elapsed > 0 and not self.dry_run:
            lines.append(f"  {done / self.elapsed:.2f} files/s, {self.audio_seconds / self.elapsed:.0f}x real "
                         f"time with {self.jobs} job(s)")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        for f in self.files:
            if f.status in FAILING:
                lines.append(f"  {f.status}: {f.rel}: {f.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "files"}
        d["files"] = [f.to_dict() for f in self.files]
        d["counts"] = self.counts
        d["exit_status"] = self.exit_status
        return d


# --------------------------------------------------------------------------- owners

@dataclass
class OwnerRule:
    """One row of an owners file: a path, folder or glob, and an owner id (or an error)."""

    pattern: str
    owner: int | None
    line: int
    error: str | None = None

    def matches(self, rel: str) -> bool:
        p = self.pattern.rstrip("/")
        if not p:
            return False
        return rel == p or rel.startswith(p + "/") or fnmatch.fnmatchcase(rel, self.pattern)


def _parse_owner(text: str) -> int:
    t = text.strip()
    value = int(t, 16) if t.lower().startswith("0x") else int(t, 10)
    if not 0 <= value < 2 ** 32:
        raise ValueError(f"{t} is out of range 0..{2 ** 32 - 1}")
    return value


def load_owners(path, src_dir=None) -> list:
    """Read an owners CSV: ``path-or-glob,owner`` per row.

    Paths are relative to ``SRC_DIR`` (``/``-separated); a folder covers every
    file under it; globs use ``fnmatch`` (``*`` also crosses folders). The last
    row that matches a file wins, so general rules go first and exceptions after.
    Owners are decimal or ``0x`` hex. A header row, blank lines and ``#`` comments
    are ignored. A bad row does not stop the batch: it is returned with its
    ``error`` set, and the files it matches fail with that reason.

    Returns
    -------
    list of OwnerRule
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read the owners file ({getattr(exc, 'strerror', None) or exc})") from None
    root = Path(src_dir).resolve() if src_dir is not None else None
    rules = []
    for i, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        where = f"{path.name} line {i}"
        if len(cells) != 2:
            rules.append(OwnerRule(cells[0], None, i, f"{where}: expected 2 columns (path,owner), got {len(cells)}"))
            continue
        pattern, owner_text = cells
        pattern = pattern.replace("\\", "/")
        if root is not None and Path(pattern).is_absolute():
            try:
                pattern = Path(pattern).resolve().relative_to(root).as_posix()
            except ValueError:
                rules.append(OwnerRule(pattern, None, i, f"{where}: {pattern} is not inside {root}"))
                continue
        pattern = pattern[2:] if pattern.startswith("./") else pattern
        try:
            owner = _parse_owner(owner_text)
        except ValueError as exc:
            if not rules and owner_text.lower() in ("owner", "owner_id", "id", "rightsholder"):
                continue  # header
            msg = str(exc) if "out of range" in str(exc) else f"{owner_text!r} is not a decimal or 0x-hex integer"
            rules.append(OwnerRule(pattern, None, i, f"{where}: bad owner id: {msg}"))
            continue
        if not pattern:
            rules.append(OwnerRule(pattern, None, i, f"{where}: empty path"))
            continue
        rules.append(OwnerRule(pattern, owner, i))
    return rules


def _owner_for(rel: str, rules: list, default: int):
    """``(owner, error)`` for a file: the last matching rule decides."""
    for rule in reversed(rules):
        if rule.matches(rel):
            return (None, rule.error) if rule.error else (rule.owner, None)
    return default, None


# --------------------------------------------------------------------------- scanning

@dataclass
class _Entry:
    rel: str
    path: Path
    kind: str  # audio, other, loop, error
    note: str | None = None


def _ident(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _scan(root: Path, exclude_dirs: set, skip_names: dict) -> list:
    """Every file under ``root`` (following symlinks, never around a loop), sorted.

    ``exclude_dirs`` holds ``(st_dev, st_ino)`` of folders not to enter;
    ``skip_names`` maps a real folder path to file names to leave out (the manifest).
    """
    out: list = []

    def walk(folder: Path, prefix: str, ancestors: frozenset):
        here = skip_names.get(os.path.realpath(folder), ())
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            out.append(_Entry(prefix.rstrip("/") or ".", folder, "error",
                              f"cannot list this folder ({exc.strerror or exc})"))
            return
        for e in entries:
            rel = prefix + e.name
            path = Path(e.path)
            if (e.name.startswith(".") and _PARTIAL in e.name) or e.name in here:
                continue  # our own partial files (removed by _clean_partials), the manifest
            try:
                st = os.stat(path)  # follows symlinks
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    out.append(_Entry(rel, path, "error", "symlink loop (the link points back to itself); "
                                                          "fix or remove the link"))
                elif e.is_symlink():
                    out.append(_Entry(rel, path, "error", "broken symlink: its target does not exist"))
                else:
                    out.append(_Entry(rel, path, "error", f"cannot read ({exc.strerror or exc})"))
                continue
            ident = (st.st_dev, st.st_ino)
            if path.is_dir():
                if ident in exclude_dirs:
                    continue
                if ident in ancestors:
                    out.append(_Entry(rel, path, "loop", "symlink loop: this folder link points back to a "
                                                         "folder above it; not followed"))
                    continue
                walk(path, rel + "/", ancestors | {ident})
            elif not path.is_file():
                out.append(_Entry(rel, path, "other", "not a regular file"))
            else:
                kind = "audio" if path.suffix.lower() in AUDIO_SUFFIXES else "other"
                out.append(_Entry(rel, path, kind))

    root_id = _ident(root)
    walk(root, "", frozenset({root_id}))
    return out


def _clean_partials(root: Path) -> int:
    """Remove the partial outputs a killed batch left under ``root``; return how many."""
    n = 0
    if not root.is_dir():
        return 0
    for folder, dirs, names in os.walk(root):
        for name in names:
            if name.startswith(".") and _PARTIAL in name:
                try:
                    os.unlink(os.path.join(folder, name))
                    n += 1
                except OSError:
                    pass
    return n


def _collision_key(rel: str) -> str:
    # case-insensitive and Unicode-normalising file systems (macOS, Windows, many
    # NAS shares) would make these one file
    return unicodedata.normalize("NFC", rel).casefold()


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- the API

def mark_catalog(src_dir, out_dir=None, *, jobs: int | None = 1, policy: str = DEFAULT_POLICY,
                 owner: int = 0, owners=None, manifest=None, in_place: bool = False,
                 dry_run: bool = False, copy_other: bool = False, force: bool = False,
                 no_backup: bool = False, progress: bool | None = False, key=None,
                 strength: float = 1.0, tags: bool = True, engine: str = "local",
                 address: str | None = None) -> CatalogReport:
    """Mark every audio file under ``src_dir``, resumably and in parallel.

    Parameters
    ----------
    src_dir : path
        The catalog. Never modified unless ``in_place``.
    out_dir : path, optional
        Where the marked tree is mirrored (same relative paths, same formats).
        Required unless ``in_place``. May lie inside ``src_dir`` (it is then not
        scanned); may not contain ``src_dir``.
    jobs : int or None
        Worker processes (``None``: one per CPU). ``1`` marks in this process.
        With ``engine="ray"`` and no ``address``: the CPUs of the local Ray
        started for the batch.
    policy : str
        Policy to embed, one of :data:`nowm.POLICIES`.
    owner : int
        Rightsholder id for files that ``owners`` does not cover.
    owners : path, optional
        CSV of ``path-or-glob,owner`` rows (see :func:`load_owners`).
    manifest : path, optional
        SQLite manifest; default ``.nowm-manifest.sqlite`` in ``out_dir`` (in
        ``src_dir`` when ``in_place``). Re-running with the same manifest skips
        finished files whose source is unchanged, redoes changed ones and
        retries failures.
    in_place : bool
        Replace each original atomically by its marked version, keeping the
        original under ``src_dir/.nowm-backup/`` unless ``no_backup``.
    dry_run : bool
        Only report what would be done; write nothing (not even the manifest).
    copy_other : bool
        Copy files that are not audio into ``out_dir`` (default: list as skipped).
    force : bool
        Mark files that carry a mark with another policy (default: conflict,
        left alone), and replace outputs this batch did not write.
    no_backup : bool
        With ``in_place``: keep no copy of the originals.
    progress : bool or None
        Progress bar on stderr; ``None``: only when stderr is a terminal.
    key : None, nowm.Key or path
        Private key for a second layer (and for verification).
    strength : float
        Watermark strength, as for :func:`nowm.embed`.
    tags : bool
        Also write the policy as metadata, where ``embed_file`` supports it.
    engine : {"local", "ray"}
        ``"ray"``: mark the files on a Ray cluster (``pip install 'nowm[ray]'``,
        see :func:`nowm.ray.mark_tasks`). Planning, the manifest and the report
        stay in this process; every node must see ``src_dir`` and ``out_dir``
        at the same paths (shared storage).
    address : str, optional
        With ``engine="ray"``: the cluster to join (``"auto"``, ``"ray://host:10001"``);
        default: the Ray already initialised in this process, else a local one.

    Returns
    -------
    CatalogReport

    Raises
    ------
    ParameterError
        Bad arguments (missing ``src_dir``, ``out_dir`` containing ``src_dir``,
        a manifest of another batch, ...). Problems with single files never
        raise: they are reported in the result.

    Examples
    --------
    >>> report = nowm.mark_catalog("catalog", "catalog-marked", jobs=2)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    from .embedding import check_owner, check_strength
    from .keys import resolve_key

    t_start = time.perf_counter()
    pol = get_policy(policy)
    owner = check_owner(owner)
    strength = check_strength(strength)
    key = resolve_key(key)
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs={jobs!r} must be a positive integer")
    if engine not in ("local", "ray"):
        raise ParameterError(f"engine={engine!r} must be 'local' or 'ray'")
    if address is not None and engine != "ray":
        raise ParameterError("an address needs engine='ray' (--engine ray)")
    src = Path(src_dir)
    if not src.is_dir():
        raise ParameterError(f"{src}: not a folder; give the catalog's folder as SRC_DIR")
    src_real = src.resolve()
    if in_place:
        if out_dir is not None and Path(out_dir).resolve() != src_real:
            raise ParameterError("give either --out DST_DIR or --in-place, not both")
        out = src
    else:
        if out_dir is None:
            raise ParameterError("give --out DST_DIR (or --in-place to replace the originals)")
        out = Path(out_dir)
        out_real = out.resolve()
        if out_real == src_real:
            raise ParameterError(f"{out}: DST_DIR is SRC_DIR; use --in-place to mark the originals")
        if _inside(src_real, out_real):
            raise ParameterError(f"{out}: DST_DIR contains SRC_DIR, so outputs could overwrite "
                                 "sources; choose a DST_DIR outside it")
        if out.exists() and not out.is_dir():
            raise ParameterError(f"{out}: exists and is not a folder; choose another DST_DIR")
    manifest_path = Path(manifest) if manifest is not None else out / MANIFEST_NAME
    rules = load_owners(owners, src) if owners is not None else []
    report = CatalogReport(str(src), str(out), str(manifest_path), pol.name, in_place, dry_run, jobs)
    report.warnings += [r.error for r in rules if r.error]

    backup_root = src / BACKUP_DIR
    exclude_dirs = {i for i in (_ident(backup_root),) if i}
    if not in_place and out.exists():
        exclude_dirs |= {i for i in (_ident(out),) if i}
    skip_names = {os.path.realpath(manifest_path.parent):
                  {manifest_path.name + s for s in ("", "-journal", "-wal", "-shm")}}
    entries = _scan(src, exclude_dirs, skip_names)

    identity = {"src_dir": src_real, "out_dir": out.resolve(), "mode": "in-place" if in_place else "mirror"}
    man = Manifest(manifest_path, identity, readonly=dry_run)
    try:
        if not dry_run:
            _clean_partials(out)
        rows = man.rows()
        tasks = _plan(entries, report, rows, man, src, out, rules, owner, pol.name, in_place,
                      dry_run, copy_other, force, no_backup, key, strength, tags)
        if tasks and not dry_run:
            _execute(tasks, report, man, jobs, progress, key, engine, address)
    finally:
        man.close()
    report.files.sort(key=lambda f: f.rel)
    report.elapsed = time.perf_counter() - t_start
    return report


# --------------------------------------------------------------------------- planning

def _unchanged(path: Path, size, mtime_ns, sha) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_size != size:
        return False
    if st.st_mtime_ns == mtime_ns:
        return True
    return sha is not None and _sha256(path) == sha  # touched, not changed


def _plan(entries, report, rows, man, src, out, rules, default_owner, policy, in_place, dry_run,
          copy_other, force, no_backup, key, strength, tags) -> list:
    """Decide what to do with each entry; record what needs no marking; return the tasks."""
    tasks = []
    claimed: dict = {}
    for e in entries:
        dst = e.path if in_place else out / e.rel
        res = FileResult(e.rel, "skipped", str(e.path), None if in_place else str(dst), e.note)
        if e.kind in ("error", "loop"):
            res.status = "failed" if e.kind == "error" else "skipped"
            _record(report, man, res, dry_run, src_path=str(e.path))
            continue
        if not in_place:
            k = _collision_key(e.rel)
            if k in claimed:
                res.status, res.dst = "failed", None
                res.reason = (f"maps to the same output as {claimed[k]} on case-insensitive file systems; "
                              "rename one of them")
                _record(report, man, res, dry_run, src_path=str(e.path))
                continue
            claimed[k] = e.rel
        if e.kind == "other":
            if in_place or not copy_other or e.note:
                res.reason = e.note or "not an audio file" + ("" if in_place else " (--copy-other copies it)")
                res.dst = None
                _record(report, man, res, dry_run, src_path=str(e.path))
            elif dry_run:
                res.status = "would-copy"
                report.files.append(res)
            else:
                _copy_other(e, dst, res, report, man)
            continue
        if in_place and os.path.realpath(e.path) != os.path.join(os.path.realpath(src), *e.rel.split("/")):
            res.reason = ("reached through a symlink: in place, only real files inside SRC_DIR are "
                          "changed (a target inside SRC_DIR is marked where it lies)")
            _record(report, man, res, dry_run, src_path=str(e.path))
            continue
        file_owner, owner_error = _owner_for(e.rel, rules, default_owner)
        if owner_error:
            res.status, res.reason = "failed", f"owner unknown: {owner_error}"
            _record(report, man, res, dry_run, src_path=str(e.path))
            continue
        prev = rows.get(e.rel)
        if prev and prev["status"] in _DONE and prev["policy"] == policy and prev["owner"] == file_owner:
            if in_place:
                fresh = _unchanged(e.path, prev["out_size"], prev["out_mtime_ns"], prev["out_sha256"]) \
                    if prev["out_size"] is not None else \
                    _unchanged(e.path, prev["src_size"], prev["src_mtime_ns"], prev["src_sha256"])
            else:
                fresh = (_unchanged(e.path, prev["src_size"], prev["src_mtime_ns"], prev["src_sha256"])
                         and _unchanged(dst, prev["out_size"], prev["out_mtime_ns"], prev["out_sha256"]))
            if fresh:
                res.status, res.policy, res.owner = "up-to-date", policy, file_owner
                res.reason = f"{prev['status']} by an earlier run; source unchanged"
                res.verified = bool(prev["verified"]) if prev["verified"] is not None else None
                report.files.append(res)
                continue
        if not in_place and not force and prev is None and (dst.exists() or dst.is_symlink()):
            res.status = "failed"
            res.reason = f"{dst} exists and was not written by this batch; pass --force to replace it"
            _record(report, man, res, dry_run, src_path=str(e.path))
            continue
        if dry_run:
            res.status, res.policy, res.owner = "would-mark", policy, file_owner
            res.reason = None
            report.files.append(res)
            continue
        tasks.append(dict(
            rel=e.rel, src=str(e.path), dst=str(dst), in_place=in_place, policy=policy,
            owner=file_owner, key=key, strength=strength, tags=tags, force=force,
            backup=None if (not in_place or no_backup) else str(src / BACKUP_DIR / e.rel),
            prev=prev,
        ))
    return tasks


def _record(report, man, res: FileResult, dry_run: bool, **fields) -> None:
    report.files.append(res)
    if not dry_run:
        man.put(res.rel, status=res.status, error=res.reason, out_path=res.dst, finished_at=now(), **fields)


def _copy_other(e, dst: Path, res: FileResult, report, man) -> None:
    try:
        st, have = os.stat(e.path), _stat(dst)
        if not (have and (have.st_size, have.st_mtime_ns) == (st.st_size, st.st_mtime_ns)):
            _atomic_copy(e.path, dst)  # copy2 keeps the time, so an unchanged file is not copied again
        res.status, res.reason = "copied", None
        man.put(e.rel, status="copied", error=None, src_path=str(e.path), out_path=str(dst),
                out_size=dst.stat().st_size, finished_at=now())
    except OSError as exc:
        res.status, res.reason = "failed", f"cannot copy to {dst} ({exc.strerror or exc})"
        man.put(e.rel, status="failed", error=res.reason, src_path=str(e.path), finished_at=now())
    report.files.append(res)


# --------------------------------------------------------------------------- running

def _execute(tasks, report, man, jobs, progress, key, engine="local", address=None) -> None:
    bar = _progress_bar(len(tasks), progress)
    state = {"audio": 0.0, "t0": time.perf_counter()}

    def started(t):
        st = _stat(t["src"])
        man.start(t["rel"], src_path=t["src"], out_path=t["dst"], policy=t["policy"], owner=t["owner"],
                  src_size=st and st.st_size, src_mtime_ns=st and st.st_mtime_ns)

    def finished(t, r):
        res = FileResult(t["rel"], r["status"], t["src"], None if t["in_place"] else t["dst"],
                         r.get("error") or r.get("note"), t["policy"], t["owner"], r.get("duration"), r.get("verified"),
                         r.get("seconds", 0.0))
        if r["status"] in ("conflict", "failed"):
            res.dst = r.get("out_path") or None
        fields = {k: r.get(k) for k in ("src_size", "src_mtime_ns", "src_sha256", "out_size",
                                         "out_mtime_ns", "out_sha256", "verify_detail")}
        fields = {k: v for k, v in fields.items() if v is not None}
        man.put(t["rel"], status=r["status"], error=r.get("error"), verified=r.get("verified"),
                out_path=r.get("out_path"), finished_at=now(), **fields)
        report.files.append(res)
        if r["status"] in ("marked", "already-marked") and r.get("duration"):
            state["audio"] += r["duration"]
            report.audio_seconds += r["duration"]
        report.peak_worker_rss = max(report.peak_worker_rss, r.get("peak_rss", 0))
        if bar is not None:
            el = max(time.perf_counter() - state["t0"], 1e-9)
            bad = sum(1 for f in report.files if f.status in FAILING)
            bar.set_postfix_str(f"{state['audio'] / el:.0f}x real time" + (f", {bad} failed" if bad else ""),
                                refresh=False)
            bar.update(1)

    try:
        if engine == "ray":
            _run_ray(tasks, jobs, man, finished, key, address)
        elif jobs == 1 or len(tasks) == 1:
            for t in tasks:
                started(t)
                finished(t, _run_task(t))
        else:
            _run_pool(tasks, min(jobs, len(tasks)), started, finished, key, bar)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total, progress):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm import tqdm

    class _Bar(tqdm):
        monitor_interval = 0  # no monitor thread: worker processes may be forked later

    return _Bar(total=total, unit="file", desc="nowm batch", file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)


def _mp_context():
    """'fork' on Linux: workers inherit the numba kernels the parent has just
    compiled (or loaded from numba's cache), so none of them compiles or even
    loads a kernel, and the imported modules are shared copy-on-write. The
    kernels are serial and the parent starts no thread before the workers exist
    (the progress bar runs without its monitor thread), so forking is safe.
    Elsewhere (macOS, where fork is unsafe with system frameworks, and Windows)
    'spawn': each worker loads the kernels from the on-disk cache that the
    parent's warm-up wrote, instead of compiling them."""
    import multiprocessing as mp

    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _warm(key) -> None:
    """Compile (or load) every numba kernel in this process by marking and
    detecting a short generated signal through the same file path as the batch."""
    import tempfile

    import numpy as np
    import soundfile as sf

    from .files import detect_file, embed_file

    sr = 44100
    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.1, (3 * sr, 2)) * np.hanning(3 * sr)[:, None]
    with tempfile.TemporaryDirectory(prefix="nowm-warm-") as tmp:
        a, b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
        sf.write(a, y, sr, subtype="PCM_16")
        embed_file(a, b, key=key)
        detect_file(b, key=key, tags=False)


def _worker_init() -> None:
    # die with the parent: a batch killed with SIGKILL leaves no orphan still writing
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _run_pool(tasks, jobs, started, finished, key, bar) -> None:
    _warm(key)
    ctx = _mp_context()
    queue = list(reversed(tasks))
    while queue:
        broken = _pool_round(queue, jobs, ctx, started, finished)
        # a worker died (killed, out of memory, a crash in a codec): every file in
        # flight is a suspect; retry each alone so only the culprit fails
        for t in broken:
            if _pool_round([t], 1, ctx, started, finished):
                finished(t, {"status": "failed", "error": "the worker process died while marking this "
                                                          "file, twice (out of memory, or a crash in a codec?)"})


def _run_ray(tasks, jobs, man, finished, key, address) -> None:
    """Mark on Ray. Every task is recorded ``running`` first (one transaction):
    Ray decides when each runs, and a row left ``running`` by a driver that dies
    is redone by the next run, as after a killed local batch."""
    from . import ray as nowm_ray

    nowm_ray._ensure_ray(address, jobs)  # before the manifest: a missing Ray is a ParameterError
    rows = []
    for t in tasks:
        st = _stat(t["src"])
        rows.append((t["rel"], dict(src_path=t["src"], out_path=t["dst"], policy=t["policy"],
                                    owner=t["owner"], src_size=st and st.st_size,
                                    src_mtime_ns=st and st.st_mtime_ns)))
    man.start_many(rows)
    seen = set()
    for i, r in nowm_ray.mark_tasks(tasks, key=key, address=address, jobs=jobs):
        if i in seen:  # at-least-once execution: a retried batch is reported once
            continue
        seen.add(i)
        finished(tasks[i], r)
    for i, t in enumerate(tasks):
        if i not in seen:  # pragma: no cover - Ray returned without a result for it
            finished(t, {"status": "failed", "error": "no result came back from Ray for this file; "
                                                      "run the same command again to retry it"})


def _pool_round(queue, jobs, ctx, started, finished) -> list:
    """Run tasks popped from ``queue`` until it is empty or the pool breaks; return
    the tasks that were in flight when it broke (those not started stay queued)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    broken: list = []
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
        running: dict = {}
        try:
            while queue or running:
                # keep each worker busy with one file plus one queued: the files
                # marked `running` in the manifest are the ones really in flight
                while queue and len(running) < jobs + (jobs > 1) and not broken:
                    t = queue.pop()
                    started(t)
                    try:
                        running[pool.submit(_run_task, t)] = t
                    except BrokenProcessPool:  # a worker died since the last look
                        broken.append(t)
                if not running:
                    return broken
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = running.pop(fut)
                    try:
                        r = fut.result()
                    except BrokenProcessPool:
                        broken.append(t)
                        continue
                    finished(t, r)
                if broken:
                    return broken + list(running.values())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return broken


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


# --------------------------------------------------------------------------- one file (in a worker)

def _run_task(t: dict) -> dict:
    """Mark one file; never raises for a problem with the file itself."""
    import resource
    import warnings

    t0 = time.perf_counter()
    r = {"status": "failed", "error": None}
    partial = _partial_path(Path(t["dst"]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report says it (owner not embedded, ...)
            r.update(_mark_one(t, partial))
    except NowmError as exc:
        r["error"] = str(exc) + _disk_full_hint(Path(t["dst"]), Path(t["src"]), exc)
    except OSError as exc:
        where = exc.filename or t["src"]
        r["error"] = f"{where}: {exc.strerror or exc}" + _disk_full_hint(Path(t["dst"]), Path(t["src"]), exc)
    except Exception as exc:  # a bug or a codec's surprise: one file fails, the batch goes on
        r["error"] = f"{t['src']}: unexpected {type(exc).__name__}: {exc}"
    finally:
        for p in (partial,):
            try:
                p.unlink()
            except OSError:
                pass
    r["seconds"] = time.perf_counter() - t0
    r["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return r


def _disk_full_hint(dst: Path, src: Path, exc) -> str:
    """Codecs report a full disk as 'System error.': say what it really is."""
    if (not isinstance(exc, OSError) or getattr(exc, "errno", None) == errno.ENOSPC
            or "No space left" in str(exc)):
        return ""
    folder = dst.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
        need = os.stat(src).st_size
    except OSError:
        return ""
    if free < 2 * need:
        return f" (the disk holding {folder} is full: {free / 1e6:.1f} MB free; free some space and run again)"
    return ""


def _partial_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.stem}{_PARTIAL}{dst.suffix}")


def _verify(det, policy, owner, owner_embedded):
    """``(ok, detail)``: does detection of an output read what was embedded?"""
    fa = det.false_alarm
    detail = (f"marked={det.marked} policy={det.policy} owner={det.owner} "
              f"false_alarm={fa:.2g}" if fa is not None else f"marked={det.marked}")
    if not det.marked:
        return False, detail, "no mark detected in the output"
    if det.policy != policy:
        return False, detail, f"the output reads policy {det.policy}, not {policy}"
    if owner_embedded and owner and det.owner != owner:
        return False, detail, f"the output's owner id reads {det.owner}, not {owner}"
    if det.owner is not None and det.owner != owner:
        return False, detail, f"the output's owner id reads {det.owner}, not {owner}"
    return True, detail, None


def _mark_one(t: dict, partial: Path) -> dict:
    from .files import detect_file, embed_file

    src, dst = Path(t["src"]), Path(t["dst"])
    key, policy, owner = t["key"], t["policy"], t["owner"]
    st = os.stat(src)
    r = {"src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns}
    prev = t["prev"] or {}
    backup = Path(t["backup"]) if t["backup"] else None
    original = src
    if t["in_place"]:
        # a killed in-place batch may have replaced the file but not recorded it
        if (prev.get("status") == "running" and prev.get("src_size") is not None
                and (st.st_size, st.st_mtime_ns) != (prev["src_size"], prev["src_mtime_ns"])):
            det = detect_file(src, key=key, tags=False)
            ok, detail, _ = _verify(det, policy, owner, False)
            if ok:
                r.update(status="marked", verified=True, verify_detail=detail, duration=det.duration,
                         out_path=str(src), note="completed by an earlier, interrupted run")
                r["src_sha256"] = _sha256(backup) if backup and backup.exists() else prev.get("src_sha256")
                return _describe_output(r, src)
        # re-marking in place (new policy or owner): start again from the kept original
        if (backup and backup.exists() and prev.get("status") in _DONE and prev.get("src_sha256")
                and _sha256(backup) == prev["src_sha256"]):
            original = backup
    r["src_sha256"] = _sha256(original)
    det_in = detect_file(original, key=key, tags=False)
    if det_in.marked:
        r["duration"] = det_in.duration
        if det_in.policy == policy:
            r.update(status="already-marked", verified=True,
                     verify_detail=f"input already reads policy {policy}, owner {det_in.owner}")
            if not t["in_place"]:
                _atomic_copy(src, dst)
                r["out_path"] = str(dst)
                return _describe_output(r, dst)
            r["out_path"] = str(src)
            return _describe_output(r, src)
        if not t["force"]:
            r.update(status="conflict", error=f"already marked {det_in.policy}, not {policy}: left alone "
                                              "(--force marks it anyway)")
            return r
    report = embed_file(original, partial, policy=policy, owner=owner, key=key,
                        strength=t["strength"], force=True, tags=t["tags"])
    r["duration"] = report.duration
    det = detect_file(partial, key=key, tags=False)
    ok, detail, why = _verify(det, policy, owner, report.owner_embedded)
    r["verify_detail"] = detail
    if not ok:
        r.update(status="failed", verified=False, error=f"verification failed: {why}")
        return r
    if t["in_place"] and backup is not None and original is src:
        if not (backup.exists() and _sha256(backup) == r["src_sha256"]):
            _atomic_copy(src, backup)
    try:
        shutil.copymode(src, partial)  # the output gets the original's permissions
    except OSError:
        pass
    os.replace(partial, dst)
    _fsync_dir(dst.parent)
    r.update(status="marked", verified=True, out_path=str(dst))
    return _describe_output(r, dst)


def _describe_output(r: dict, path: Path) -> dict:
    st = os.stat(path)
    r.update(out_size=st.st_size, out_mtime_ns=st.st_mtime_ns, out_sha256=_sha256(path))
    return r


# --------------------------------------------------------------------------- file helpers

def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` (times kept) through a partial file, fsync, rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = _partial_path(dst)
    try:
        shutil.copy2(src, part)
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, dst)
    except BaseException:
        try:
            part.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(dst.parent)
