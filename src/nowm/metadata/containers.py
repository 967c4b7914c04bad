"""Tags in MP3 (ID3v2.4), FLAC / Ogg Vorbis / Opus (Vorbis comments) and M4A (MP4 atoms),
through mutagen; plus the container sniffing and the top-level XMP ``uuid`` box of MP4.

Writers work on a file that is already a private copy (see ``__init__``); readers never
raise on malformed data, they record what they skipped.
"""

from __future__ import annotations

import io
import os
import struct

from . import _vocab as V
from . import riff, xmp

#: Adobe's XMP box in ISO base media files: ``uuid`` BE7ACFCB-97A9-42E8-9C71-999491E3AFAC.
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
_RIGHTS_KEYS = {"COPYRIGHT", "LICENSE", "TCOP", "WCOP", "USER", "CPRT"}
_MP4_FREEFORM = "----:com.apple.iTunes:"


# ----------------------------------------------------------------- sniffing

def _mpeg_sync(b: bytes) -> bool:
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version, layer = (b[1] >> 3) & 3, (b[1] >> 1) & 3
    bitrate, rate = b[2] >> 4, (b[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 15 and rate != 3


def id3_size(head: bytes):
    """Total bytes of an ID3v2 tag at the start of ``head`` (header, body, footer)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return None
    body = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + body + (10 if head[5] & 0x10 else 0)


def sniff(f, size: int):
    """Container of an open binary file: ``wav``, ``mp3``, ``flac``, ``ogg-vorbis``,
    ``ogg-opus``, ``ogg-flac``, ``mp4``, ``id3`` (an ID3 tag before something else) or None."""
    f.seek(0)
    head = f.read(64)
    if riff.is_wave(head):
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS" and len(head) >= 28:
        f.seek(27 + head[26])
        packet = f.read(8)
        return {b"\x01vorbis": "ogg-vorbis", b"OpusHead": "ogg-opus"}.get(
            packet[:7] if packet[:1] == b"\x01" else packet[:8],
            "ogg-flac" if packet[:5] == b"\x7fFLAC" else None)
    if head[4:8] == b"ftyp":
        return "mp4"
    tag = id3_size(head)
    if tag is not None:
        f.seek(tag)
        after = f.read(4)
        if after == b"fLaC":
            return "flac"
        if _mpeg_sync(after):
            return "mp3"
        f.seek(tag)
        window = f.read(1 << 16)  # some writers pad between the tag and the first frame
        i = window.find(b"\xff")
        while 0 <= i <= len(window) - 4:
            if _mpeg_sync(window[i:i + 4]):
                return "mp3"
            i = window.find(b"\xff", i + 1)
        return "id3"
    if _mpeg_sync(head[:4]):
        return "mp3"
    return None


# ----------------------------------------------------------------- reading

def _norm(key: str) -> str:
    return key.upper().replace("-", "_").replace(" ", "_")


def read_items(report, vocabulary: str, items, source: str) -> None:
    """Findings from ``(label, key, value)`` items of a key-value tag format.

    ``key`` is matched case-insensitively: ``DATAMINING``, ``TDM_RESERVATION``,
    ``TDM_POLICY``; the rights fields (``COPYRIGHT``, ``LICENSE``, ID3 ``TCOP`` ...)
    are reported whatever they say; any other field only when it holds a DMI code.
    """
    tdm_policy = " ".join(str(v) for _, k, v in items if _norm(k) in ("TDM_POLICY", "TDMPOLICY"))
    for label, key, value in items:
        k = _norm(key)
        value = str(value)
        if k in ("DATAMINING", "DATA_MINING"):
            pol = V.policy_of_dmi(value)
            if pol is None and not V.dmi_codes(value):
                report.skip(f"{source}: {label} value {V.clip(value)!r} is not a PLUS DMI code")
            report.add(vocabulary, label, value, pol, source)
        elif k in ("TDM_RESERVATION", "TDMRESERVATION"):
            v = value.strip()
            pol = (V.policy_of_dmi(tdm_policy) or "no-tdm") if v == "1" else (
                "ai-allowed" if v == "0" else None)
            if pol is None:
                report.skip(f"{source}: {label} value {V.clip(value)!r} is neither 0 nor 1")
            report.add(vocabulary, label, v, pol, source)
        elif k in ("TDM_POLICY", "TDMPOLICY"):
            report.add(vocabulary, label, value, V.policy_of_dmi(value), source)
        elif k in _RIGHTS_KEYS or V.dmi_codes(value):
            report.add(vocabulary, label, value, V.policy_of_dmi(value), source)


def _id3_findings(tags, report, source: str) -> None:
    items = []
    for frame in list(tags.values()):
        fid = frame.FrameID
        try:
            if fid == "PRIV":
                if frame.owner == "XMP":
                    xmp.read(frame.data, report, f"{source} PRIV:XMP")
            elif fid == "TXXX":
                for t in frame.text:
                    items.append((f"TXXX:{frame.desc}", frame.desc, t))
            elif fid in ("TCOP", "USER", "COMM", "TIT3"):
                text = "\n".join(str(t) for t in frame.text) if isinstance(frame.text, list) else str(frame.text)
                items.append((fid, fid, text))
            elif fid == "WCOP":
                items.append((fid, fid, frame.url))
        except Exception as exc:  # a frame mutagen half-parsed
            report.skip(f"{source}: frame {fid} unreadable ({type(exc).__name__})")
    read_items(report, "id3", items, source)


def read_id3(fileobj, report, source: str = "ID3") -> None:
    """ID3v2 tag at the start of ``fileobj`` (and mutagen's view of an ID3v1 at the end)."""
    from mutagen.id3 import ID3, ID3NoHeaderError

    fileobj.seek(0)
    try:
        tags = ID3(fileobj)
    except ID3NoHeaderError:
        return
    except Exception as exc:  # truncated or malformed tags
        why = V.clip(str(exc)) or "truncated or malformed"
        report.skip(f"{source}: tag unreadable ({type(exc).__name__}: {why}); ignored")
        return
    _id3_findings(tags, report, source)


def read_id3_bytes(data: bytes, report, source: str) -> None:
    read_id3(io.BytesIO(data), report, source)


_VORBIS_CLASSES = {"flac": ("mutagen.flac", "FLAC"), "ogg-vorbis": ("mutagen.oggvorbis", "OggVorbis"),
                   "ogg-opus": ("mutagen.oggopus", "OggOpus"), "ogg-flac": ("mutagen.oggflac", "OggFLAC")}


def _vorbis_class(container):
    import importlib

    module, name = _VORBIS_CLASSES[container]
    return getattr(importlib.import_module(module), name)


def read_vorbis(fileobj, container: str, report) -> None:
    source = {"flac": "FLAC", "ogg-flac": "Ogg FLAC"}.get(container, "Ogg") + " Vorbis comment"
    fileobj.seek(0)
    try:
        audio = _vorbis_class(container)(fileobj)
    except Exception as exc:
        report.skip(f"{source}: unreadable ({type(exc).__name__}: {V.clip(str(exc))})")
        return
    tags = audio.tags or []
    items = [(k.upper(), k, v) for k, v in list(tags)]
    read_items(report, "vorbis-comment", items, source)
    if container == "flac" and getattr(audio, "metadata_blocks", None) is not None:
        # an ID3 tag some writers put before "fLaC" is read too
        fileobj.seek(0)
        if id3_size(fileobj.read(10)) is not None:
            read_id3(fileobj, report, "ID3 before FLAC")


def read_mp4(fileobj, size: int, report) -> None:
    from mutagen.mp4 import MP4

    fileobj.seek(0)
    try:
        audio = MP4(fileobj)
    except Exception as exc:
        report.skip(f"MP4: atoms unreadable ({type(exc).__name__}: {V.clip(str(exc))})")
        audio = None
    items = []
    for key, values in (dict(audio.tags or {}) if audio is not None else {}).items():
        vals = values if isinstance(values, list) else [values]
        for v in vals:
            text = bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)
            name = key.rsplit(":", 1)[-1] if key.startswith("----:") else key
            items.append((key, "CPRT" if key == "cprt" else name, text))
    read_items(report, "mp4", items, "MP4")
    for off, box_size in _top_boxes(fileobj, size, report):
        fileobj.seek(off + 4)
        if fileobj.read(4) == b"uuid" and box_size >= 24:
            fileobj.seek(off + 8)
            if fileobj.read(16) == XMP_UUID:
                n = box_size - 24
                if n > xmp.MAX_XMP_BYTES:
                    report.skip(f"MP4 uuid XMP box of {n} bytes is larger than the limit; ignored")
                    continue
                xmp.read(fileobj.read(n), report, "MP4 uuid XMP")


def _top_boxes(f, size: int, report=None):
    """``(offset, size)`` of each top-level box; stops (and notes it) at a box that lies."""
    pos = 0
    out = []
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(16)
        n = struct.unpack(">I", hdr[:4])[0]
        if n == 1 and len(hdr) >= 16:
            n = struct.unpack(">Q", hdr[8:16])[0]
        elif n == 0:
            n = size - pos
        if n < 8 or pos + n > size:
            if report is not None:
                report.skip(f"MP4: box at offset {pos} claims {n} bytes; "
                            f"{size - pos} bytes left; the rest of the file ignored")
            break
        out.append((pos, n))
        pos += n
    return out


# ----------------------------------------------------------------- writing

def write_id3(path: str, pol, owner: int):
    """Write nowm's ID3v2.4 frames into the MP3 file ``path``; ``(notes, written)``."""
    from mutagen.id3 import ID3, PRIV, TCOP, TXXX, USER, WCOP, ID3NoHeaderError

    try:
        tags = ID3(path)
        had = True
    except ID3NoHeaderError:
        tags, had = ID3(), False
    except Exception as exc:
        return [f"MP3 tags not written: the existing ID3 tag is unreadable "
                f"({type(exc).__name__}); it was left as it was"], False
    notes = []
    if had and tags.version < (2, 2, 0):
        notes.append("MP3: no ID3v2 tag; one was created with the ID3v1 tag's fields (ID3v1 kept)")
    elif had and tags.version < (2, 4, 0):
        notes.append(f"MP3: ID3v2.{tags.version[1]} tag upgraded to ID3v2.4")
    old_xmp = [f for f in tags.getall("PRIV") if f.owner == "XMP"]
    try:
        packet = xmp.build(pol, owner, old_xmp[0].data if old_xmp else None)
        tags.setall("PRIV", [f for f in tags.getall("PRIV") if f.owner != "XMP"]
                    + [PRIV(owner="XMP", data=packet)])
        notes.append("MP3: ID3v2.4 PRIV XMP" + (" (merged into the existing packet)" if old_xmp else ""))
    except xmp.XmpError as exc:
        notes.append(f"MP3: existing PRIV XMP left as it was and no XMP written ({exc})")
    users = tags.getall("USER")
    eng = next((u for u in users if u.lang == "eng"), None)
    text = V.merge_lines(eng.text if eng is not None else "", V.terms(pol, owner))
    tags.setall("USER", [u for u in users if u is not eng] + [USER(encoding=3, lang="eng", text=text)])
    old = tags.get("TCOP")
    tags.setall("TCOP", [TCOP(encoding=3, text=V.merge_values(list(old.text) if old else [], V.notice(pol)))])
    wcop = tags.get("WCOP")
    if wcop is not None and wcop.url and V.policy_of_dmi(wcop.url) is None:
        notes.append(f"MP3: existing WCOP {wcop.url!r} kept")
    else:
        tags.setall("WCOP", [WCOP(url=pol.iptc_uri)])
    tags.setall("TXXX:DataMining", [TXXX(encoding=3, desc="DataMining", text=[pol.iptc_uri])])
    notes.append("MP3: USER, TCOP, WCOP, TXXX:DataMining")
    tags.save(path, v2_version=4)
    return notes, True


def _open_for_tags(cls, path: str, label: str):
    """``(mutagen file with a tag block, None)``, or ``(None, failure)`` when
    ``path`` cannot be parsed, ``failure`` being the ``(notes, written)`` to return."""
    try:
        audio = cls(path)
    except Exception as exc:
        return None, ([f"{label} tags not written: unreadable ({type(exc).__name__}: {exc})"], False)
    if audio.tags is None:
        audio.add_tags()
    return audio, None


def write_vorbis(path: str, container: str, pol, owner: int):
    """Write nowm's Vorbis comments into ``path``; ``(notes, written)``."""
    audio, failure = _open_for_tags(_vorbis_class(container), path, container)
    if failure:
        return failure
    tags = audio.tags
    tags["COPYRIGHT"] = V.merge_values(tags.get("COPYRIGHT", []), V.notice(pol))
    tags["LICENSE"] = V.merge_values(tags.get("LICENSE", []), V.terms(pol, owner))
    tags["DATAMINING"] = [pol.iptc_uri]
    tags["TDM_RESERVATION"] = [V.reservation(pol)]
    if V.tdm_policy(pol):
        tags["TDM_POLICY"] = [V.tdm_policy(pol)]
    elif "TDM_POLICY" in tags:
        del tags["TDM_POLICY"]
    audio.save()
    return [f"{container}: Vorbis comments COPYRIGHT, LICENSE, DATAMINING, TDM_RESERVATION"
            + (", TDM_POLICY" if V.tdm_policy(pol) else "")], True


def write_mp4(path: str, pol, owner: int):
    """Write nowm's MP4 atoms and XMP box into ``path``; ``(notes, written)``."""
    from mutagen.mp4 import MP4, MP4FreeForm

    audio, failure = _open_for_tags(MP4, path, "M4A")
    if failure:
        return failure
    tags = audio.tags
    tags["cprt"] = V.merge_values([str(v) for v in tags.get("cprt", [])], V.notice(pol))
    tags[_MP4_FREEFORM + "DATAMINING"] = [MP4FreeForm(pol.iptc_uri.encode("utf-8"))]
    audio.save()
    notes = ["M4A: cprt, ----:com.apple.iTunes:DATAMINING"]
    notes += _write_mp4_xmp(path, pol, owner)
    return notes, True


def _write_mp4_xmp(path: str, pol, owner: int) -> list:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        boxes = _top_boxes(f, size)
        if not boxes or sum(n for _, n in boxes) != size:
            return ["M4A: XMP not written (top-level boxes do not cover the file)"]
        old = None
        for off, n in boxes:
            f.seek(off + 4)
            if f.read(4) == b"uuid" and n >= 24 and f.read(16) == XMP_UUID:
                old = (off, n)
        existing = None
        if old is not None:
            f.seek(old[0] + 24)
            existing = f.read(min(old[1] - 24, xmp.MAX_XMP_BYTES + 1))
        try:
            packet = xmp.build(pol, owner, existing)
        except xmp.XmpError as exc:
            return [f"M4A: existing XMP box left as it was and no XMP written ({exc})"]
        box = struct.pack(">I", 24 + len(packet)) + b"uuid" + XMP_UUID + packet
        if old is not None and old[0] + old[1] == size:
            f.seek(old[0])  # the last box: rewrite it in place
            f.truncate()
        else:
            if old is not None:  # elsewhere: retype it to free space, so no offset moves
                f.seek(old[0] + 4)
                f.write(b"free")
            f.seek(size)
            if boxes[-1][1] == size - boxes[-1][0]:
                f.seek(boxes[-1][0])
                n = struct.unpack(">I", f.read(4))[0]
                if n == 0:  # "to the end of file": give it its real size first
                    if boxes[-1][1] > 0xFFFFFFFF:
                        return ["M4A: XMP not written (last box is open-ended and over 4 GiB)"]
                    f.seek(boxes[-1][0])
                    f.write(struct.pack(">I", boxes[-1][1]))
            f.seek(size)
        f.write(box)
    return ["M4A: XMP uuid box" + (" (merged into the existing packet)" if old else "")]
