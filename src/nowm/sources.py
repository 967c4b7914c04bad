"""Items of a dataset: folders, globs, NeMo-style JSONL manifests and tar shards.

:func:`iter_items` turns what a user types after ``nowm scan`` into a stream of
:class:`Item` objects, each one audio item to check, or an error to report
(a missing path, a broken manifest row, a refused tar member). Nothing is held in
memory beyond one tar member at a time, capped at ``max_member_bytes``.

Tar shards (webdataset) are read with :mod:`tarfile` in stream mode, member by
member, so a shard is read once, front to back, and can come from a pipe. A
member whose declared size exceeds the cap is refused (its data is skipped in
blocks, never loaded), and so is any oversized extended header (GNU long name,
pax), which :mod:`tarfile` would otherwise read whole into memory.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tarfile
from dataclasses import dataclass, field

from .ingest import AUDIO_EXTENSIONS

__all__ = ["Item", "iter_items", "iter_manifest", "iter_tar", "MAX_MEMBER_BYTES",
           "MANIFEST_SUFFIXES", "TAR_SUFFIXES"]

#: Largest tar member read into memory (a 10-minute 48 kHz stereo 24-bit WAV is 173 MB).
MAX_MEMBER_BYTES = 256 * 2**20
#: Largest extended tar header (pax, GNU long name) accepted.
_MAX_HEADER_BYTES = 2**20
MANIFEST_SUFFIXES = (".jsonl", ".json", ".ndjson")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_GLOB_CHARS = set("*?[")


@dataclass
class Item:
    """One thing to check, or one error to report.

    ``label`` names it in records; exactly one of ``path`` and ``data`` is set
    unless ``error`` is. ``extra`` holds where it came from (``manifest`` and
    ``line``, or ``shard`` and ``member``) and, for manifest rows, the row itself.
    """

    label: str
    path: str | None = None
    data: bytes | None = None
    offset: float = 0.0
    duration: float | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def source(self):
        return self.path if self.path is not None else self.data


def _is_tar(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def _is_manifest(name: str) -> bool:
    return name.lower().endswith(MANIFEST_SUFFIXES)


def _is_audio(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def iter_items(paths, *, max_member_bytes: int = MAX_MEMBER_BYTES):
    """Yield an :class:`Item` for every audio item under ``paths``.

    Parameters
    ----------
    paths : iterable of str or path
        Audio files, folders (walked recursively, following symbolic links but
        never around a loop), glob patterns (``**`` allowed), JSONL manifests
        (``.jsonl``, ``.json``, ``.ndjson``) and tar shards (``.tar``,
        ``.tar.gz``...).
    max_member_bytes : int
        Largest tar member read.
    """
    for p in paths:
        p = os.fspath(p)
        if _GLOB_CHARS & set(p) and not os.path.lexists(p):
            found = False
            for m in _glob(p):
                found = True
                yield from _one(m, max_member_bytes, explicit=False)
            if not found:
                yield Item(p, error=f"{p}: no file matches this pattern")
        else:
            yield from _one(p, max_member_bytes, explicit=True)


def _glob(pattern):
    """Sorted matches of ``pattern``; ``**`` is walked without going round link loops
    (:func:`glob.glob` follows links to folders with no loop check)."""
    if "**" not in pattern:
        yield from sorted(glob.glob(pattern))
        return
    parts = pattern.split(os.sep)
    i = next(k for k, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = os.sep.join(parts[:i]) or ("/" if pattern.startswith(os.sep) else ".")
    rx = re.compile(_translate(os.sep.join(parts[i:])))
    for path in _walk_files(root):
        rel = os.path.relpath(path, root)
        if rx.fullmatch(rel.replace(os.sep, "/")):
            yield path if parts[:i] else rel


def _translate(pat):
    """Glob pattern (with ``**``) -> regular expression over '/'-separated paths."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            j += pat.startswith("!", j)
            j += pat.startswith("]", j)
            j = pat.find("]", j)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1:j].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _walk_files(root):
    """Every file under ``root``, sorted, following links to folders once each."""
    seen = set()

    def visit(folder):
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                yield from visit(e.path)
            else:
                yield e.path

    yield from visit(root)


def _one(p, cap, explicit):
    if os.path.isdir(p):
        yield from _walk(p, cap)
    elif not os.path.lexists(p):
        yield Item(p, error=f"{p}: no such file or folder; check the path")
    elif _is_manifest(p):
        yield from iter_manifest(p)
    elif _is_tar(p):
        yield from iter_tar(p, max_member_bytes=cap)
    elif explicit or _is_audio(p):
        yield Item(p, path=p)


def _walk(root, cap):
    """Sorted recursive walk that follows links to folders but never twice into one."""
    seen = set()

    def visit(folder):
        try:
            st = os.stat(folder)
        except OSError as exc:
            yield Item(folder, error=f"{folder}: cannot enter ({exc.strerror or exc})")
            return
        ident = (st.st_dev, st.st_ino)
        if ident in seen:  # a symbolic-link loop, or a second link to a folder seen
            return
        seen.add(ident)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Item(folder, error=f"{folder}: cannot list ({exc.strerror or exc})")
            return
        for e in entries:
            path = os.path.join(folder, e.name)
            try:
                is_dir = e.is_dir()  # follows links; False for a dangling or looping link
            except OSError:
                is_dir = False
            if is_dir:
                yield from visit(path)
            elif _is_tar(e.name):
                yield from iter_tar(path, max_member_bytes=cap)
            elif _is_audio(e.name):
                yield Item(path, path=path)

    yield from visit(root)


def iter_manifest(path):
    """Yield the items of a NeMo-style JSONL manifest, one JSON object a line.

    Each row names its audio in ``audio_filepath`` (or ``path``), relative paths
    being taken from the manifest's folder; optional ``offset`` and ``duration``
    (seconds) select a segment. A broken row gives an error item naming the line.
    """
    base = os.path.dirname(os.path.abspath(path))
    try:
        fh = open(path, "r", encoding="utf-8", errors="strict")
    except OSError as exc:
        yield Item(str(path), error=f"{path}: cannot open manifest ({exc.strerror or exc})")
        return
    with fh:
        lineno = 0
        while True:
            lineno += 1
            try:
                line = fh.readline()
            except UnicodeDecodeError:
                yield Item(f"{path}:{lineno}", error=f"{path}:{lineno}: not UTF-8 text; the manifest "
                           "is corrupt or not a manifest", extra={"manifest": str(path), "line": lineno})
                return
            if not line:
                return
            if not line.strip():
                continue
            extra = {"manifest": str(path), "line": lineno, "row_text": line.rstrip("\n")}
            yield _manifest_item(path, base, lineno, line, extra)


def _manifest_item(path, base, lineno, line, extra):
    where = f"{path}:{lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return Item(where, error=f"{where}: not valid JSON ({exc.msg}); fix or remove the row",
                    extra=extra)
    if not isinstance(row, dict):
        return Item(where, error=f"{where}: a row must be a JSON object", extra=extra)
    extra["row"] = row
    audio = row.get("audio_filepath", row.get("path"))
    if not isinstance(audio, str) or not audio:
        return Item(where, error=f"{where}: no audio_filepath in the row", extra=extra)
    full = audio if os.path.isabs(audio) else os.path.join(base, audio)
    try:
        offset = float(row.get("offset") or 0.0)
        duration = row.get("duration")
        duration = None if duration is None else float(duration)
    except (TypeError, ValueError):
        return Item(audio, error=f"{where}: offset and duration must be numbers (seconds)",
                    extra=extra)
    if offset < 0 or duration is not None and not duration > 0 or offset != offset:
        return Item(audio, error=f"{where}: offset={offset!r} / duration={duration!r} are out of "
                    "range", extra=extra)
    # NeMo rows without an offset give the whole file's duration: check the file
    segment = "offset" in row
    return Item(full, path=full, offset=offset, duration=duration if segment else None,
                extra=extra)


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses extended headers that :mod:`tarfile` would read whole into memory."""

    def _proc_member(self, tf):
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                         tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > _MAX_HEADER_BYTES:
            raise tarfile.ReadError(
                f"an extended header declares {self.size} bytes (more than {_MAX_HEADER_BYTES}); "
                "refusing a possible tar bomb")
        return super()._proc_member(tf)


def iter_tar(path, *, max_member_bytes: int = MAX_MEMBER_BYTES, fileobj=None):
    """Yield one item per audio member of a (possibly compressed) tar shard,
    streamed member by member; non-audio members (``.json``, ``.txt``...) are
    skipped. Refused or truncated members give error items."""
    label = str(path)
    try:
        tf = tarfile.open(name=None if fileobj else path, fileobj=fileobj, mode="r|*",
                          tarinfo=_GuardedTarInfo)
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield Item(label, error=f"{label}: not a readable tar shard ({exc})",
                   extra={"shard": label})
        return
    with tf:
        members = 0
        while True:
            try:
                m = tf.next()
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                yield Item(label, error=f"{label}: shard unreadable after {members} members ({exc})",
                           extra={"shard": label})
                return
            if m is None:
                return
            members += 1
            if not m.isfile() or not _is_audio(m.name):
                continue
            where = f"{label}::{m.name}"
            extra = {"shard": label, "member": m.name}
            if m.size > max_member_bytes:
                yield Item(where, error=f"{where}: member declares {m.size} bytes, more than the cap "
                           f"of {max_member_bytes}; refused (raise --max-member-mb to read it)",
                           extra=extra)
                continue
            try:
                data = tf.extractfile(m).read()
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                yield Item(where, error=f"{where}: truncated or unreadable member ({exc})",
                           extra=extra)
                return
            yield Item(where, data=data, extra=extra)
