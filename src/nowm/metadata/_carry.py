"""Carry a source file's tags, pictures and metadata chunks over to its marked copy.

libsndfile, which writes the marked copy, keeps only a few text fields; this puts back
everything else that does not describe the encoded stream itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import containers, riff

# chunks that describe the encoded audio (rewritten by libsndfile) or are padding
# chunks that describe the encoded audio (rewritten by libsndfile) or are padding, and a
# C2PA manifest, whose hash binding the new audio no longer matches
_STRUCTURAL = {b"fmt ", b"data", b"fact", b"ds64", b"PEAK", b"JUNK", b"junk", b"PAD ", b"FLLR",
               b"pad ", b"C2PA"}
_MAX_CHUNK = 16 << 20


def carry_over(src, dst) -> list:
    """Copy the metadata of ``src`` into ``dst`` (same container; ``dst`` is a private file,
    modified in place). Returns notes; never raises for malformed metadata."""
    src, dst = Path(src), Path(dst)
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        kind = containers.sniff(f, size)
    with open(dst, "rb") as f:
        dst_kind = containers.sniff(f, os.fstat(f.fileno()).st_size)
    if kind is None or kind != dst_kind:
        return []
    try:
        if kind == "wav":
            return _carry_wav(src, dst)
        if kind == "mp3":
            return _carry_id3(src, dst)
        if kind in ("flac", "ogg-vorbis", "ogg-opus", "ogg-flac"):
            return _carry_vorbis(src, dst, kind)
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # malformed source tags: the copy keeps what libsndfile wrote
        return [f"source tags not carried over ({type(exc).__name__}: {str(exc)[:200]})"]
    return []


def _carry_wav(src: Path, dst: Path) -> list:
    notes = []
    with open(src, "rb") as s:
        slay = riff.parse(s, os.fstat(s.fileno()).st_size)
        if slay.fatal:
            return [f"source chunks not carried over: {'; '.join(slay.problems)}"]
        extra, has_info = [], False
        for c in slay.chunks:
            if c.cid == b"C2PA":
                notes.append("source C2PA manifest not carried over (it is bound to the "
                             "unmarked audio)")
            if c.cid in _STRUCTURAL:
                continue
            if c.size > _MAX_CHUNK:
                notes.append(f"source chunk {c.cid.decode('latin-1')!r} of {c.size} bytes not carried over")
                continue
            s.seek(c.data_offset)
            chunk = riff._chunk(c.cid, s.read(c.size))
            if riff.is_info(s, c) and not has_info:
                info = chunk
                has_info = True
            else:
                extra.append(chunk)
    # the INFO list goes last: nowm's tags replace it next, and at the end of the file
    # the in-place writer cuts it off instead of leaving a JUNK chunk behind
    if has_info:
        extra.append(info)
    if not extra:
        return notes
    names = sorted({x[:4].decode("latin-1").strip() for x in extra})
    with open(dst, "r+b") as d:  # dst is private: edited in place when its layout allows
        size = os.fstat(d.fileno()).st_size
        dlay = riff.parse(d, size)
        if riff.editable_in_place(dlay, size):
            drop = [c for c in dlay.chunks if has_info and riff.is_info(d, c)]
            if not riff.rewrite_in_place(d, dlay, drop, extra):
                return notes + ["source chunks not carried over: the copy would exceed 4 GiB"]
            return notes + [f"source chunks carried over: {', '.join(names)}"]
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".carry", dir=str(dst.parent))
    os.close(fd)
    try:
        with open(dst, "rb") as d, open(tmp, "r+b") as out:
            size = os.fstat(d.fileno()).st_size
            dlay = riff.parse(d, size)
            if dlay.fatal:
                raise OSError(f"{dst}: unexpected chunk layout written by libsndfile")
            plan = [c for c in dlay.chunks if not (has_info and riff.is_info(d, c))] + extra
            if not riff.emit(d, out, dlay, plan, size):
                Path(tmp).unlink(missing_ok=True)
                return notes + ["source chunks not carried over: the copy would exceed 4 GiB"]
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return notes + [f"source chunks carried over: {', '.join(names)}"]


def _carry_id3(src: Path, dst: Path) -> list:
    from mutagen.id3 import ID3, ID3NoHeaderError

    try:
        tags = ID3(src)
    except ID3NoHeaderError:
        return []
    if tags.version < (2, 2, 0):  # only an ID3v1 tag: libsndfile's title/artist already cover it
        return []
    from .cawg import C2PA_MIMES

    # a C2PA manifest is bound to the source's bytes: on the marked copy it would be invalid
    geob = tags.getall("GEOB")
    kept = [f for f in geob if f.mime not in C2PA_MIMES]
    tags.setall("GEOB", kept)
    tags.save(dst, v2_version=4)
    if len(kept) < len(geob):
        return [f"source ID3 tag carried over ({len(tags)} frames); its C2PA manifest not "
                "(it is bound to the unmarked audio)"]
    return [f"source ID3 tag carried over ({len(tags)} frames)"]


def _carry_vorbis(src: Path, dst: Path, kind: str) -> list:
    cls = containers._vorbis_class(kind)
    a, b = cls(src), cls(dst)
    if b.tags is None:
        b.add_tags()
    if a.tags is not None:
        b.tags.clear()
        b.tags.extend([(k, v) for k, v in a.tags])
    carried = len(a.tags or [])
    if kind == "flac":
        b.clear_pictures()
        for pic in a.pictures:
            b.add_picture(pic)
        carried += len(a.pictures)
        for block in a.metadata_blocks:
            if block.code in (2, 5):  # APPLICATION, CUESHEET
                b.metadata_blocks.append(block)
                carried += 1
    b.save()
    return [f"source tags carried over ({carried} comments/pictures/blocks)"] if carried else []
