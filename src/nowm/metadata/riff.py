"""RIFF/WAVE (and RF64/BW64) chunks: read rights metadata, rewrite with nowm's chunks.

Written: an XMP packet in a ``_PMX`` chunk (Adobe's chunk for XMP in WAV) and ``ICOP``
(copyright) and ``ICMT`` (comment) in the ``LIST``/``INFO`` chunk. Read as well: an ``XMP ``
chunk, and an ``id3 ``/``ID3 `` chunk. Every other chunk is copied byte for byte, in order.

Chunk sizes are not trusted: a chunk that runs past the end of the file, a missing pad
byte after an odd-sized chunk, a RIFF size that disagrees with the file, and garbage after
the last chunk are all detected. Reading records them in ``skipped``; writing refuses any
file whose chunk chain does not reach the audio cleanly (nothing is changed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import _vocab as V
from . import xmp

_FORMS = (b"RIFF", b"RF64", b"BW64")
_MAX_META_CHUNK = 16 << 20  # metadata chunks larger than this are not read
_MAX_RIFF = 0xFFFFFFFF


@dataclass
class Chunk:
    cid: bytes
    offset: int      # of the 8-byte header
    size: int        # data bytes (from ds64 for RF64 chunks whose 32-bit size is -1)
    end: int         # offset just past the data and its pad byte (if present)

    @property
    def data_offset(self) -> int:
        return self.offset + 8


@dataclass
class Layout:
    form: bytes
    chunks: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    fatal: bool = False   # the chain does not reach the audio cleanly: never rewrite
    chain_end: int = 12   # end of the last well-formed chunk
    file_size: int = 0
    ds64: tuple | None = None  # (offset of ds64 data, riff size, data size)


def _plausible_id(cid: bytes) -> bool:
    return len(cid) == 4 and all(32 <= b < 127 for b in cid)


def is_wave(head: bytes) -> bool:
    return len(head) >= 12 and head[:4] in _FORMS and head[8:12] == b"WAVE"


def parse(f, file_size: int) -> Layout:
    """Walk the chunk chain of a WAVE file open for binary reading."""
    f.seek(0)
    head = f.read(12)
    lay = Layout(form=head[:4], file_size=file_size)
    riff_size = struct.unpack("<I", head[4:8])[0]
    declared_end = 8 + riff_size
    pos = 12
    while pos + 8 <= file_size:
        f.seek(pos)
        hdr = f.read(8)
        cid, size = hdr[:4], struct.unpack("<I", hdr[4:8])[0]
        if not _plausible_id(cid):
            lay.problems.append(f"bytes at offset {pos} are not a chunk header; "
                                f"{file_size - pos} trailing bytes ignored")
            last = lay.chunks[-1] if lay.chunks else None
            # right after the audio (or an empty data chunk, as streaming writers leave it),
            # such bytes may be audio that some decoders play: never put chunks before them
            if last is None or last.cid == b"data" or not any(
                    c.cid == b"data" and c.size for c in lay.chunks):
                lay.fatal = True
            break
        if lay.form != b"RIFF" and cid == b"ds64" and size >= 24:
            f.seek(pos + 8)
            r_size, d_size = struct.unpack("<QQ", f.read(16))
            lay.ds64 = (pos + 8, r_size, d_size)
            declared_end = 8 + r_size if riff_size == _MAX_RIFF else declared_end
        if size == _MAX_RIFF and lay.ds64 is not None and cid == b"data":
            size = lay.ds64[2]
        data_end = pos + 8 + size
        if data_end > file_size:
            lay.problems.append(f"chunk {cid.decode('latin-1')!r} at offset {pos} claims {size} "
                                f"bytes but only {file_size - pos - 8} remain")
            lay.chunks.append(Chunk(cid, pos, file_size - pos - 8, file_size))
            lay.fatal = True
            break
        end = data_end + (size & 1)
        if size & 1 and end + 8 <= file_size:
            f.seek(end - 1)
            probe = f.read(5)
            # a writer that forgot the pad byte: the next header starts right after the data
            if not _plausible_id(probe[1:5]) and _plausible_id(probe[0:4]):
                lay.problems.append(f"odd-sized chunk {cid.decode('latin-1')!r} at offset {pos} "
                                    "has no pad byte")
                end = data_end
        end = min(end, file_size)
        lay.chunks.append(Chunk(cid, pos, size, end))
        lay.chain_end = end
        pos = end
    if lay.form == b"RIFF" and declared_end != lay.chain_end and not lay.fatal:
        lay.problems.append(f"RIFF size field says {declared_end} bytes, the chunks end at "
                            f"{lay.chain_end}")
    names = {c.cid for c in lay.chunks}
    if b"fmt " not in names or b"data" not in names:
        lay.problems.append("no 'fmt ' or 'data' chunk")
        lay.fatal = True
    return lay


def _read_chunk(f, chunk: Chunk, report, limit=_MAX_META_CHUNK):
    if chunk.size > limit:
        report.skip(f"RIFF {chunk.cid.decode('latin-1')!r} chunk of {chunk.size} bytes is larger "
                    f"than the {limit >> 20} MiB limit; ignored")
        return None
    f.seek(chunk.data_offset)
    return f.read(chunk.size)


def info_items(data: bytes):
    """``[(id, raw value bytes)]`` of a ``LIST`` chunk's data (``INFO`` + subchunks)."""
    items = []
    pos = 4
    while pos + 8 <= len(data):
        sid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if not _plausible_id(sid) or pos + 8 + size > len(data):
            break
        items.append((sid, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return items, pos < len(data) - 1


def _text(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read(f, file_size: int, report) -> None:
    """Add the rights metadata of a WAVE file to ``report``."""
    lay = parse(f, file_size)
    for p in lay.problems:
        report.skip(f"RIFF: {p}")
    for chunk in lay.chunks:
        name = chunk.cid.decode("latin-1")
        if chunk.cid in (b"_PMX", b"XMP ", b"xmp "):
            data = _read_chunk(f, chunk, report)
            if data is not None:
                xmp.read(data, report, f"RIFF {name}")
        elif chunk.cid == b"LIST":
            f.seek(chunk.data_offset)
            if f.read(4) != b"INFO":
                continue
            data = _read_chunk(f, chunk, report)
            if data is None:
                continue
            items, bad = info_items(data)
            if bad:
                report.skip("RIFF LIST/INFO: malformed subchunk; the rest of the list ignored")
            for sid, raw in items:
                text = _text(raw)
                if sid == b"ICOP" or (sid in (b"ICMT", b"ISBJ", b"IKEY") and V.dmi_codes(text)):
                    report.add("riff-info", sid.decode("latin-1"), text, V.policy_of_dmi(text),
                               "RIFF LIST/INFO")
        elif chunk.cid in (b"id3 ", b"ID3 "):
            data = _read_chunk(f, chunk, report)
            if data is not None:
                from . import containers

                containers.read_id3_bytes(data, report, f"RIFF {name}")


def _pad(data: bytes) -> bytes:
    return data + (b"\x00" if len(data) & 1 else b"")


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + _pad(data)


def _merge_info(data: bytes | None, pol, owner):
    """New ``LIST`` data with nowm's ``ICOP``/``ICMT`` merged in; None when the existing
    list is malformed (it is then left as it was)."""
    items, bad = info_items(data) if data else ([], False)
    if bad:
        return None
    out, done = [], set()
    for sid, raw in items:
        if sid in (b"ICOP", b"ICMT") and sid not in done:
            if sid == b"ICOP":
                text = V.merge_notice(_text(raw), V.notice(pol))
            else:
                text = V.merge_lines(_text(raw), V.terms(pol, owner))
            raw = text.encode("utf-8") + b"\x00"
            done.add(sid)
        out.append(_chunk(sid, raw))
    for sid in (b"ICOP", b"ICMT"):
        if sid not in done:
            ours = V.notice(pol) if sid == b"ICOP" else V.terms(pol, owner)
            out.append(_chunk(sid, ours.encode("utf-8") + b"\x00"))
    return b"INFO" + b"".join(out)


def _plan(src, pol, owner: int, file_size: int):
    """``(layout, notes, changes)`` for writing nowm's chunks into the WAVE file ``src``:
    ``changes`` are ``(old chunk or None, new chunk bytes)`` pairs, the old chunk being
    the ``_PMX`` or ``LIST``/``INFO`` chunk the new one replaces (None: a new chunk).
    ``layout`` is None when the chunk chain is not sound."""
    lay = parse(src, file_size)
    if lay.fatal:
        return None, [f"WAV tags not written: {'; '.join(lay.problems)}"], []
    notes = [f"WAV: {p} (repaired in the copy)" for p in lay.problems]
    pmx = next((c for c in lay.chunks if c.cid == b"_PMX"), None)
    info = next((c for c in lay.chunks if is_info(src, c)), None)
    existing = None
    if pmx is not None:
        src.seek(pmx.data_offset)
        existing = src.read(min(pmx.size, xmp.MAX_XMP_BYTES + 1))
    try:
        packet = xmp.build(pol, owner, existing)
        notes.append("WAV: XMP (plus:DataMining, tdm:reservation, tdm:policy, xmpRights) in _PMX"
                     + (" merged into the existing packet" if existing else ""))
    except xmp.XmpError as exc:
        packet = None
        notes.append(f"WAV: existing _PMX XMP left as it was and no XMP written ({exc})")
    info_data = None
    if info is not None:
        src.seek(info.data_offset)
        info_data = src.read(info.size) if info.size <= _MAX_META_CHUNK else None
    new_info = _merge_info(info_data, pol, owner) if (info is None or info_data is not None) else None
    if new_info is None:
        notes.append("WAV: existing LIST/INFO chunk too large or malformed; left as it was")
    else:
        notes.append("WAV: LIST/INFO ICOP and ICMT")
    changes = []
    if packet is not None:
        changes.append((pmx, _chunk(b"_PMX", packet)))
    if new_info is not None:
        changes.append((info, _chunk(b"LIST", new_info)))
    return lay, notes, changes


def write(src, dst, pol, owner: int, file_size: int) -> list:
    """Copy the WAVE file ``src`` (binary, readable) to ``dst`` (binary, writable, seekable)
    with nowm's ``_PMX`` and ``LIST``/``INFO`` chunks.

    Returns ``(notes, written)``; when the chunk chain is not sound nothing is written,
    ``written`` is False and the notes say why."""
    lay, notes, changes = _plan(src, pol, owner, file_size)
    if lay is None:
        return notes, False
    new = {id(old): data for old, data in changes if old is not None}
    plan = [new.get(id(c), c) for c in lay.chunks]
    plan += [data for old, data in changes if old is None]
    if not emit(src, dst, lay, plan, file_size):
        return ["WAV tags not written: the file would exceed the 4 GiB limit of RIFF"], False
    return notes, True


def write_in_place(f, pol, owner: int, file_size: int):
    """Add nowm's chunks to the WAVE file open as ``f`` (``r+b``) without copying it: an
    old ``_PMX`` or ``LIST``/``INFO`` chunk becomes ``JUNK`` (or is cut off when it ends
    the file) and the new chunks are appended. Not atomic: for a private file only.

    Returns ``(notes, written)``, or None (nothing changed) when the file needs the
    copying :func:`write` instead: a repaired or RF64 layout, or bytes after the chunks.
    """
    lay, notes, changes = _plan(f, pol, owner, file_size)
    if lay is None:
        return notes, False
    if not editable_in_place(lay, file_size):
        return None
    if not rewrite_in_place(f, lay, [old for old, _ in changes if old is not None],
                            [data for _, data in changes]):
        return ["WAV tags not written: the file would exceed the 4 GiB limit of RIFF"], False
    return notes, True


def editable_in_place(lay: Layout, file_size: int) -> bool:
    """Whether :func:`rewrite_in_place` may edit this file: a plain RIFF chain that ends
    the file and needs no repair."""
    return lay.form == b"RIFF" and not lay.problems and not lay.fatal and file_size == lay.chain_end


def rewrite_in_place(f, lay: Layout, drop, append) -> bool:
    """Edit the WAVE file open as ``f`` (``r+b``, see :func:`editable_in_place`): the
    chunks ``drop`` are cut off where they end the file and otherwise become ``JUNK``
    (their bytes zeroed), then the chunks ``append`` (bytes) are added at the end and
    the RIFF size is fixed. Returns False (nothing changed) past the RIFF size limit."""
    end = lay.chain_end
    drop = list(drop)
    for c in reversed(lay.chunks):  # dropped chunks at the end are cut off
        if not any(c is d for d in drop) or c.end != end:
            break
        end = c.offset
        drop = [d for d in drop if d is not c]
    total = end + sum(len(data) for data in append)
    if total - 8 > _MAX_RIFF:
        return False
    for c in drop:
        f.seek(c.offset)
        f.write(b"JUNK")
        f.seek(c.data_offset)
        f.write(bytes(c.end - c.data_offset))
    f.truncate(end)
    f.seek(end)
    for data in append:
        f.write(data)
    f.seek(4)
    f.write(struct.pack("<I", total - 8))
    return True


def emit(src, dst, lay: Layout, plan, file_size: int) -> bool:
    """Write a WAVE file to ``dst``: ``plan`` items are chunks of ``src`` (copied with a
    pad byte restored where one was missing) or whole chunks as bytes. Bytes after the
    last chunk of ``src`` follow. Returns False (nothing written) past the RIFF size limit."""
    total = 12 + sum(len(p) if isinstance(p, bytes) else _copied_size(p) for p in plan)
    if lay.form == b"RIFF" and total - 8 > _MAX_RIFF:
        return False
    riff_size = total - 8 if lay.form == b"RIFF" else _MAX_RIFF
    dst.write(lay.form + struct.pack("<I", riff_size) + b"WAVE")
    ds64_at = None
    for item in plan:
        if isinstance(item, bytes):
            dst.write(item)
            continue
        if item.cid == b"ds64":
            ds64_at = dst.tell() + 8
        _copy(src, dst, item.offset, item.end - item.offset)
        if item.size & 1 and item.end == item.data_offset + item.size:
            dst.write(b"\x00")  # restore a missing pad byte
    if file_size > lay.chain_end:  # bytes after the last chunk stay after the chunks
        _copy(src, dst, lay.chain_end, file_size - lay.chain_end)
    if ds64_at is not None and lay.form != b"RIFF":
        dst.seek(ds64_at)
        dst.write(struct.pack("<Q", total - 8))
    return True


def is_info(f, chunk: Chunk) -> bool:
    if chunk.cid != b"LIST" or chunk.size < 4:
        return False
    f.seek(chunk.data_offset)
    return f.read(4) == b"INFO"


def _copied_size(c: Chunk) -> int:
    return 8 + c.size + (c.size & 1)


def _copy(src, dst, offset, length, block=1 << 20):
    src.seek(offset)
    while length > 0:
        buf = src.read(min(block, length))
        if not buf:
            raise OSError("file shrank while being copied")
        dst.write(buf)
        length -= len(buf)

