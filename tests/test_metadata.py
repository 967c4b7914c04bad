"""Standard metadata (DESIGN section 6): written per container, audio untouched, existing tags
kept, read back by nowm, mutagen and ExifTool, and hostile input never crashes."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nowm.errors import AudioIOError, ParameterError
from nowm.metadata import TagReport, read_tags, write_tags
from nowm.policy import POLICIES, get_policy

PLUS = "http://ns.useplus.org/ldf/vocab/"
PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not a real image: bytes to compare

# name: (extension, soundfile format, subtype, sample rate)
FORMATS = {
    "wav16": ("wav", "WAV", "PCM_16", 44100),
    "wav24": ("wav", "WAV", "PCM_24", 44100),
    "wavfloat": ("wav", "WAV", "FLOAT", 44100),
    "rf64": ("wav", "RF64", "PCM_24", 44100),
    "flac": ("flac", "FLAC", "PCM_16", 44100),
    "mp3": ("mp3", "MP3", "MPEG_LAYER_III", 44100),
    "ogg": ("ogg", "OGG", "VORBIS", 44100),
    "opus": ("opus", "OGG", "OPUS", 48000),
}


def _signal(sr, seconds=1.0, seed=1):
    r = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * r.standard_normal((len(t), 2))
    return y.astype(np.float32)


def _riff_append(path, cid: bytes, data: bytes):
    """Append a chunk to a RIFF WAVE file by hand (with its pad byte) and fix the size."""
    with open(path, "r+b") as f:
        f.seek(0, 2)
        f.write(cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
        end = f.tell()
        f.seek(0)
        if f.read(4) == b"RIFF":
            f.write(struct.pack("<I", end - 8))


def make_file(tmp_path, kind, *, tagged=True):
    """An audio file with existing tags, a picture (or extra chunks for WAV)."""
    ext, fmt, subtype, sr = FORMATS[kind]
    path = tmp_path / f"{kind}.{ext}"
    with sf.SoundFile(path, "w", sr, 2, subtype=subtype, format=fmt) as f:
        if tagged:
            f.title, f.artist, f.copyright = "Song", "Band", "(c) 2024 Band"
        f.write(_signal(sr))
    if not tagged:
        return path
    if ext == "wav" and fmt == "WAV":
        _riff_append(path, b"bext", b"B" * 602)
        _riff_append(path, b"abcd", b"odd")  # odd size, padded
    elif ext == "flac":
        from mutagen.flac import FLAC, Picture

        a = FLAC(path)
        pic = Picture()
        pic.type, pic.mime, pic.data = 3, "image/png", PICTURE
        a.add_picture(pic)
        a["GENRE"] = "Test"
        a.save()
    elif ext == "mp3":
        from mutagen.id3 import APIC, ID3, TXXX

        t = ID3(path)  # libsndfile wrote the title as ID3v1; mutagen reads it into this tag
        t.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=PICTURE))
        t.add(TXXX(encoding=3, desc="Mood", text=["calm"]))
        t.save(path)
    elif ext in ("ogg", "opus"):
        from mutagen import File
        from mutagen.flac import Picture

        a = File(path)
        pic = Picture()
        pic.type, pic.mime, pic.data = 3, "image/png", PICTURE
        a["METADATA_BLOCK_PICTURE"] = [base64.b64encode(pic.write()).decode("ascii")]
        a["GENRE"] = "Test"
        a.save()
    return path


def _decode(path):
    return sf.read(path, dtype="float64" if "float" in str(path) else "int32", always_2d=True)[0]


def _audio_bytes_wav(path):
    data = Path(path).read_bytes()
    i = data.index(b"data")
    n = struct.unpack("<I", data[i + 4:i + 8])[0]
    if n == 0xFFFFFFFF:  # RF64: size in ds64
        j = data.index(b"ds64")
        n = struct.unpack("<Q", data[j + 16:j + 24])[0]
    return data[i + 8:i + 8 + n]


def _exiftool():
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed (Debian package libimage-exiftool-perl; .ci/run installs it)")
    return exe


def _exif(path, config=None):
    cmd = [_exiftool()] + (["-config", str(config)] if config else []) + ["-j", "-G1", "-a", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


# --------------------------------------------------------------------------- writing

@pytest.mark.parametrize("kind", list(FORMATS))
def test_tags_keep_audio_and_existing_tags(tmp_path, kind):
    path = make_file(tmp_path, kind)
    before = _decode(path)
    raw_before = _audio_bytes_wav(path) if path.suffix == ".wav" else None
    if path.suffix == ".wav":
        original = path.read_bytes()
    notes = write_tags(path, "no-ai-training", owner=77)
    assert notes and not any("not written" in n for n in notes), notes
    after = _decode(path)
    assert before.shape == after.shape and np.array_equal(before, after)
    with sf.SoundFile(path) as f:
        assert f.title == "Song"
    report = read_tags(path)
    assert report.policy == "no-ai-training" and report.reserved
    assert not report.skipped, report.skipped
    vocabularies = {f.vocabulary for f in report.findings if f.policy == "no-ai-training"}
    if path.suffix == ".wav":
        assert raw_before == _audio_bytes_wav(path)
        assert {"iptc-plus", "tdmrep", "xmp-rights", "riff-info"} <= vocabularies
        data = path.read_bytes()
        if kind != "rf64":
            assert b"bext" + struct.pack("<I", 602) + b"B" * 602 in data
            assert b"abcd" + struct.pack("<I", 3) + b"odd\0" in data
            assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
        assert sf.info(path).frames == sf.info(io.BytesIO(original)).frames
    elif kind == "mp3":
        assert {"iptc-plus", "tdmrep", "xmp-rights", "id3"} <= vocabularies
    else:
        assert vocabularies == {"vorbis-comment"}


def test_mutagen_sees_id3_frames_and_picture(tmp_path):
    from mutagen.id3 import ID3

    path = make_file(tmp_path, "mp3")
    write_tags(path, "no-genai-training", owner=5)
    tags = ID3(path)
    assert tags.version == (2, 4, 0)
    uri = PLUS + "DMI-PROHIBITED-GENAIMLTRAINING"
    assert tags["TXXX:DataMining"].text == [uri]
    assert tags["TXXX:Mood"].text == ["calm"]
    assert "DMI-PROHIBITED-GENAIMLTRAINING" in tags["TCOP"].text[-1]
    assert tags["WCOP"].url == uri
    user = tags.getall("USER")[0]
    assert user.lang == "eng" and "owner id 5" in user.text and uri in user.text
    priv = [f for f in tags.getall("PRIV") if f.owner == "XMP"]
    assert len(priv) == 1 and b"<plus:DataMining>" + uri.encode() in priv[0].data
    assert b"<tdm:reservation>1</tdm:reservation>" in priv[0].data
    assert tags.getall("APIC")[0].data == PICTURE
    assert tags["TIT2"].text == ["Song"]


@pytest.mark.parametrize("kind", ["flac", "ogg", "opus"])
def test_mutagen_sees_vorbis_comments_and_picture(tmp_path, kind):
    from mutagen import File

    path = make_file(tmp_path, kind)
    write_tags(path, "no-tdm")
    a = File(path)
    assert a["DATAMINING"] == [PLUS + "DMI-PROHIBITED"]
    assert a["TDM_RESERVATION"] == ["1"]
    assert a["TDM_POLICY"] == [PLUS + "DMI-PROHIBITED"]
    assert a["COPYRIGHT"][0] == "(c) 2024 Band" and "DMI-PROHIBITED" in a["COPYRIGHT"][1]
    assert "nowm policy no-tdm" in a["LICENSE"][0] or "policy no-tdm" in a["LICENSE"][0]
    assert a["GENRE"] == ["Test"] and a["TITLE"] == ["Song"]
    if kind == "flac":
        assert a.pictures[0].data == PICTURE
    else:
        assert a["METADATA_BLOCK_PICTURE"]


def test_rewriting_replaces_nowm_values_and_never_weakens(tmp_path):
    path = make_file(tmp_path, "flac")
    write_tags(path, "no-genai-training")
    write_tags(path, "no-ai-training")
    from mutagen import File

    a = File(path)
    assert len(a["COPYRIGHT"]) == 2 and len(a["LICENSE"]) == 1  # user's + ours, once
    assert read_tags(path).policy == "no-ai-training"
    before = path.read_bytes()
    notes = write_tags(path, "ai-allowed")
    assert "left unchanged" in notes[0] and path.read_bytes() == before


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_round_trips(tmp_path, name):
    path = make_file(tmp_path, "wav16", tagged=False)
    write_tags(path, name)
    report = read_tags(path)
    assert report.policy == name
    assert report.reserved == get_policy(name).reserves
    fields = {(f.vocabulary, f.field): f.value for f in report.findings}
    assert fields[("iptc-plus", "plus:DataMining")] == get_policy(name).iptc_uri
    assert fields[("tdmrep", "tdm:reservation")] == ("1" if get_policy(name).reserves else "0")


def test_wav_merges_existing_xmp_and_info(tmp_path):
    path = make_file(tmp_path, "wav16")
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
              b'02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/'
              b'elements/1.1/" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"><dc:title><rdf:Alt>'
              b'<rdf:li xml:lang="x-default">Keep me</rdf:li></rdf:Alt></dc:title><xmpRights:UsageTerms>'
              b'<rdf:Alt><rdf:li xml:lang="x-default">Call us first.</rdf:li></rdf:Alt>'
              b'</xmpRights:UsageTerms></rdf:Description></rdf:RDF></x:xmpmeta>')
    _riff_append(path, b"_PMX", packet)
    write_tags(path, "no-ai-training")
    write_tags(path, "no-ai-training")
    data = path.read_bytes()
    assert data.count(b"_PMX") == 1 and b"Keep me" in data
    terms = [f.value for f in read_tags(path).findings if f.field == "xmpRights:UsageTerms"]
    assert len(terms) == 1 and terms[0].startswith("Call us first.\nNo AI training")
    assert terms[0].count("nowm") == 1
    icop = [f.value for f in read_tags(path).findings if f.field == "ICOP"]
    assert icop == ["(c) 2024 Band; No AI training (DMI-PROHIBITED-AIMLTRAINING; nowm)"]


@pytest.mark.parametrize("layout", ["info-before-data", "tags-at-end", "trailing-chunk"])
def test_wav_tags_written_in_place_without_a_copy(tmp_path, layout):
    # atomic=False (a private output file) appends the chunks instead of copying the file
    path = make_file(tmp_path, "wav16")  # libsndfile puts its LIST/INFO before the data
    if layout == "tags-at-end":
        write_tags(path, "no-genai-training")  # the copying writer puts ours at the end
    if layout == "trailing-chunk":
        _riff_append(path, b"abcd", b"tail")
    audio_before = _audio_bytes_wav(path)
    inode = path.stat().st_ino
    notes = write_tags(path, "no-ai-training", owner=5, atomic=False)
    assert not any("not written" in n for n in notes), notes
    assert path.stat().st_ino == inode  # the same file, edited
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert _audio_bytes_wav(path) == audio_before
    report = read_tags(path)
    assert report.policy == "no-ai-training" and not report.skipped, report.skipped
    assert data.count(b"_PMX") == 1 and data.count(b"ICOP") == 1
    with sf.SoundFile(path) as f:
        assert f.title == "Song"  # libsndfile's own field survives the move of the list
    if layout == "info-before-data":
        assert data.index(b"JUNK") < data.index(b"data") < data.index(b"_PMX")
    if layout == "trailing-chunk":
        assert data.index(b"abcd") < data.index(b"_PMX")


def test_m4a(tmp_path):
    av = pytest.importorskip("av", reason="PyAV makes the M4A test file")
    path = tmp_path / "t.m4a"
    y = _signal(44100).T.copy()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(y, format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for p in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(p)

    def decode(p):
        with av.open(str(p)) as c:
            return np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)

    before = decode(path)
    write_tags(path, "consent-required")
    write_tags(path, "consent-required")
    assert np.array_equal(before, decode(path))
    from mutagen.mp4 import MP4

    tags = MP4(path).tags
    assert bytes(tags["----:com.apple.iTunes:DATAMINING"][0]).decode() == PLUS + "DMI-PROHIBITED-SEECONSTRAINT"
    assert len(tags["cprt"]) == 1
    report = read_tags(path)
    assert report.policy == "consent-required"
    assert {"mp4", "iptc-plus", "tdmrep"} <= {f.vocabulary for f in report.findings}
    assert sum(f.field == "plus:DataMining" for f in report.findings) == 1


# --------------------------------------------------------------------------- independent readers

@pytest.mark.parametrize("kind", ["wav16", "mp3", "flac"])
def test_exiftool_shows_datamining_and_tdmrep(tmp_path, kind):
    _exiftool()
    path = make_file(tmp_path, kind)
    write_tags(path, "no-ai-training")
    tags = _exif(path)
    uri = PLUS + "DMI-PROHIBITED-AIMLTRAINING"
    if kind == "flac":
        assert tags["Vorbis:Datamining"] == uri
        assert str(tags["Vorbis:TdmReservation"]) == "1"
        assert tags["Vorbis:TdmPolicy"] == uri
        return
    # ExifTool reads the XMP packet (RIFF _PMX, ID3 PRIV XMP) with its real namespaces
    datamining = tags.get("XMP-plus:DataMining")
    assert datamining in (uri, "DMI-PROHIBITED-AIMLTRAINING"), tags
    assert str(tags["XMP-tdm:Reservation"]) == "1"
    assert tags["XMP-tdm:Policy"] == uri
    assert tags["XMP-xmpRights:Marked"] in (True, "True")
    if kind == "mp3":
        assert tags["ID3v2_4:UserDefinedText"] == f"(DataMining) {uri}"
        assert "DMI-PROHIBITED-AIMLTRAINING" in tags["ID3v2_4:Copyright"]
    else:
        assert "DMI-PROHIBITED-AIMLTRAINING" in tags["RIFF:Copyright"]


_EXIFTOOL_CONFIG = r"""
%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        tdm => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::tdm' } },
    },
    'Image::ExifTool::PLUS::XMP' => { DataMining => { } },
);
%Image::ExifTool::UserDefined::tdm = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-tdm', 2 => 'Other' },
    NAMESPACE => { 'tdm' => 'http://www.w3.org/ns/tdmrep/' },
    WRITABLE => 'string',
    reservation => { Writable => 'integer' },
    policy => { },
);
1;
"""


def test_xmp_written_by_exiftool_is_read(tmp_path):
    exe = _exiftool()
    config = tmp_path / "tdm.cfg"
    config.write_text(_EXIFTOOL_CONFIG)
    sidecar = tmp_path / "x.xmp"
    subprocess.run([exe, "-config", str(config), "-o", str(sidecar),
                    "-XMP-plus:DataMining=DMI-PROHIBITED-GENAIMLTRAINING", "-XMP-tdm:reservation=1",
                    "-XMP-tdm:policy=https://example.com/tdm-policy.json",
                    "-XMP-xmpRights:UsageTerms=Ask first"], check=True, capture_output=True)
    packet = sidecar.read_bytes()
    assert b"Image::ExifTool" in packet
    # the packet in a RIFF "XMP " chunk (some tools' spelling) and in "_PMX"
    for cid in (b"XMP ", b"_PMX"):
        path = make_file(tmp_path, "wav16", tagged=False)
        _riff_append(path, cid, packet)
        report = read_tags(path)
        by_field = {f.field: f for f in report.findings}
        assert by_field["plus:DataMining"].value == "DMI-PROHIBITED-GENAIMLTRAINING"  # a bare code
        assert by_field["plus:DataMining"].policy == "no-genai-training"
        assert by_field["tdm:reservation"].policy == "no-tdm"  # its tdm:policy is not a PLUS URI
        assert by_field["xmpRights:UsageTerms"].value == "Ask first"
        assert report.policy == "no-tdm" and not report.skipped
        # nowm keeps ExifTool's packet: merged into its own when in _PMX, left alone in "XMP "
        write_tags(path, "no-tdm")
        terms = [f.value for f in read_tags(path).findings if f.field == "xmpRights:UsageTerms"]
        mining = [f.value for f in read_tags(path).findings if f.field == "plus:DataMining"]
        if cid == b"_PMX":
            assert terms == ["Ask first\n" + terms[0].split("\n")[1]] and "policy no-tdm" in terms[0]
            assert mining == [PLUS + "DMI-PROHIBITED"]
        else:
            assert terms[0] == "Ask first" and "policy no-tdm" in terms[1]
            assert mining == ["DMI-PROHIBITED-GENAIMLTRAINING", PLUS + "DMI-PROHIBITED"]


def test_exiftool_written_m4a_is_read(tmp_path):
    exe = _exiftool()
    pytest.importorskip("av", reason="PyAV makes the M4A test file")
    test_m4a(tmp_path)  # leaves tmp_path / "t.m4a" tagged by nowm
    path = tmp_path / "t.m4a"
    config = tmp_path / "tdm.cfg"
    config.write_text(_EXIFTOOL_CONFIG)
    subprocess.run([exe, "-config", str(config), "-overwrite_original",
                    "-XMP-plus:DataMining=DMI-PROHIBITED", "-XMP-tdm:reservation=1", str(path)],
                   check=True, capture_output=True)
    report = read_tags(path)
    assert report.policy == "no-tdm"
    assert any(f.field == "plus:DataMining" and f.value == "DMI-PROHIBITED" for f in report.findings)


# --------------------------------------------------------------------------- hostile input

_BOMB = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
         + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&%s;" % chr(97 + i).encode()) * 10)
                    for i in range(9))
         + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&j;</x:xmpmeta>')


def test_entity_bomb_and_huge_xmp_are_skipped(tmp_path):
    for payload, why in ((_BOMB, "entity"), (b"<x>" + b" " * (5 << 20) + b"</x>", "limit"),
                         (b"<x:xmpmeta not xml", "not well-formed")):
        path = make_file(tmp_path, "wav16", tagged=False)
        _riff_append(path, b"_PMX", payload)
        before = _decode(path)
        report = read_tags(path)
        assert any(why in s for s in report.skipped), report.skipped
        notes = write_tags(path, "no-ai-training")
        assert any("left as it was" in n for n in notes), notes
        assert np.array_equal(before, _decode(path))
        assert payload in path.read_bytes()  # the user's chunk is not destroyed
        assert read_tags(path).policy == "no-ai-training"  # LIST/INFO still says it


def test_chunk_sizes_that_lie(tmp_path):
    path = make_file(tmp_path, "wav16", tagged=False)
    good = path.read_bytes()
    i = good.index(b"data")
    # data chunk claims more than the file holds: read says so, write refuses
    lying = good[:i + 4] + struct.pack("<I", 0x7FFFFFF0) + good[i + 8:]
    path.write_bytes(lying)
    report = read_tags(path)
    assert any("claims" in s for s in report.skipped)
    for atomic in (True, False):  # the copying and the in-place writer refuse alike, saying why
        notes = write_tags(path, "no-ai-training", atomic=atomic)
        assert notes[0].startswith("WAV tags not written") and "claims" in notes[0], notes
        assert path.read_bytes() == lying
    # RF64 whose ds64 claims a terabyte of audio: reported, never rewritten
    rf64 = make_file(tmp_path, "rf64", tagged=False)
    raw = bytearray(rf64.read_bytes())
    j = raw.index(b"ds64") + 16
    raw[j:j + 8] = struct.pack("<Q", 1 << 40)
    rf64.write_bytes(bytes(raw))
    assert any("claims 1099511627776 bytes" in s for s in read_tags(rf64).skipped)
    assert write_tags(rf64, "no-ai-training")[0].startswith("WAV tags not written")
    assert rf64.read_bytes() == raw
    # RIFF size too small, an odd chunk without its pad byte: repaired in the copy
    bad = bytearray(good)
    bad[4:8] = struct.pack("<I", 100)
    bad += b"abcd" + struct.pack("<I", 3) + b"odd" + b"LIST" + struct.pack("<I", 4) + b"adtl"
    path.write_bytes(bytes(bad))
    report = read_tags(path)
    assert any("RIFF size" in s for s in report.skipped) and any("pad byte" in s for s in report.skipped)
    write_tags(path, "no-ai-training")
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert b"abcd\x03\x00\x00\x00odd\x00LIST\x04\x00\x00\x00adtl" in data
    assert np.array_equal(_decode(path), sf.read(io.BytesIO(good), dtype="int32", always_2d=True)[0])
    assert read_tags(path).policy == "no-ai-training"
    # bytes right after the audio may be audio (streamed files): no chunk goes before them
    path.write_bytes(good + b"\x00\x01garbage")
    for atomic in (True, False):
        notes = write_tags(path, "no-ai-training", atomic=atomic)
        assert notes[0].startswith("WAV tags not written"), notes
        assert path.read_bytes() == good + b"\x00\x01garbage"
    assert any("not a chunk header" in s for s in read_tags(path).skipped)
    # after another chunk they stay after the chunks and are reported
    path.write_bytes(good)
    _riff_append(path, b"abcd", b"odd")
    with open(path, "ab") as f:
        f.write(b"\x00\x01garbage")
    write_tags(path, "no-ai-training")
    data = path.read_bytes()
    assert data.endswith(b"\x00\x01garbage") and data.index(b"_PMX") < len(data) - 9
    assert read_tags(path).policy == "no-ai-training"
    # a streamed WAV whose data size is 0 is never rewritten
    i = good.index(b"data")
    streamed = good[:i + 4] + struct.pack("<I", 0) + good[i + 8:]
    path.write_bytes(streamed)
    assert "not written" in write_tags(path, "no-ai-training")[0] and path.read_bytes() == streamed
    # a malformed LIST/INFO is left as it was
    path.write_bytes(good)
    _riff_append(path, b"LIST", b"INFOICOP\xff\xff\x00\x00xy")
    notes = write_tags(path, "no-ai-training")
    assert any("malformed; left as it was" in n for n in notes)
    assert b"LIST\x0e\x00\x00\x00INFOICOP\xff\xff\x00\x00xy" in path.read_bytes()
    assert read_tags(path).policy == "no-ai-training"  # from the XMP


def test_truncated_id3_and_non_audio(tmp_path):
    path = make_file(tmp_path, "mp3")
    data = path.read_bytes()
    truncated = data[:200]  # the ID3 header claims far more than is there
    path.write_bytes(truncated)
    report = read_tags(path)
    assert any("ID3: tag unreadable" in s for s in report.skipped) and not report.findings
    notes = write_tags(path, "no-ai-training")
    assert "not written" in notes[0] and path.read_bytes() == truncated
    for junk in (b"", b"hello world\n" * 10, b"\x89PNG\r\n\x1a\n" + bytes(100), b"RIFF\0\0\0\0AVI "):
        p = tmp_path / "junk.wav"
        p.write_bytes(junk)
        report = read_tags(p)
        assert report.container is None and report.skipped and not report.findings
        notes = write_tags(p, "no-ai-training")
        assert "not written" in notes[0] and p.read_bytes() == junk


def test_fuzzed_headers_never_raise(tmp_path, rng):
    sources = []
    for kind in ("wav16", "mp3", "flac", "ogg"):
        p = make_file(tmp_path, kind)
        write_tags(p, "no-ai-training")
        sources.append(p.read_bytes())
    for data in sources:
        for _ in range(60):
            buf = bytearray(data[: min(len(data), 40000)])
            for _ in range(int(rng.integers(1, 20))):
                pos = int(rng.integers(0, min(len(buf), 4096)))
                buf[pos] = int(rng.integers(0, 256))
            report = read_tags(bytes(buf))  # must not raise
            json.dumps(report.to_dict())


def test_sources_and_errors(tmp_path):
    path = make_file(tmp_path, "flac")
    write_tags(path, "no-ai-training")
    data = path.read_bytes()
    assert read_tags(data).policy == "no-ai-training"
    with open(path, "rb") as f:
        f.seek(10)
        assert read_tags(f).policy == "no-ai-training"
        assert f.tell() == 10
    with pytest.raises(AudioIOError):
        read_tags(tmp_path / "missing.flac")
    with pytest.raises(AudioIOError):
        read_tags(tmp_path)
    with pytest.raises(AudioIOError):
        write_tags(tmp_path / "missing.flac", "no-ai-training")
    with pytest.raises(ParameterError):
        write_tags(path, "no-such-policy")
    with pytest.raises(ParameterError):
        write_tags(path, "no-ai-training", owner=-1)
    json.dumps(read_tags(path).to_dict())


# --------------------------------------------------------------------------- C2PA / CAWG

def _store(entries, label="cawg.training-mining"):
    return {"active_manifest": "urn:m1", "manifests": {"urn:m1": {"assertions": [
        {"label": "c2pa.actions", "data": {"actions": []}},
        {"label": label, "data": {"entries": entries}}]}}}


@pytest.mark.parametrize("name", list(POLICIES))
def test_cawg_assertion_maps_to_policy(name):
    from nowm.metadata.cawg import findings_from_store

    pol = get_policy(name)
    keys = ("ai_training", "ai_generative_training", "ai_inference", "data_mining")
    entries = {f"cawg.{k}": {"use": ("constrained" if pol.cawg_constrained else "notAllowed")
                             if k in pol.cawg_not_allowed else "allowed"} for k in keys}
    report = TagReport()
    findings_from_store(json.dumps(_store(entries)), report)
    assert report.policy == name and report.findings[0].vocabulary == "c2pa-cawg"
    # the C2PA 1.x spelling of the same assertion
    report = TagReport()
    findings_from_store(_store({k.replace("cawg.", "c2pa."): v for k, v in entries.items()},
                               "c2pa.training-mining"), report)
    assert report.policy == name


def test_cawg_malformed_store_is_skipped():
    from nowm.metadata.cawg import findings_from_store

    for bad in ("{not json", {"manifests": []}, {"manifests": {"m": {"assertions": [
            {"label": "cawg.training-mining", "data": {"entries": [1, 2]}}]}}}):
        report = TagReport()
        findings_from_store(bad, report)
        assert report.skipped and not report.findings


def _sign_c2pa(src, dst, mime, entries):
    """Sign ``src`` into ``dst`` with a C2PA manifest carrying a CAWG training-mining
    assertion, using a throwaway CA and signer made here (offline; untrusted by design)."""
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python is optional; the test extra installs it")
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nowm tests")])

    def usage(sign, ca):
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                             crl_sign=ca, encipher_only=False, decipher_only=False)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    base = lambda subject, pub, serial: (x509.CertificateBuilder().subject_name(subject)  # noqa: E731
                                         .issuer_name(name("nowm test CA")).public_key(pub)
                                         .serial_number(serial)
                                         .not_valid_before(now - datetime.timedelta(days=1))
                                         .not_valid_after(now + datetime.timedelta(days=7)))
    ca = (base(name("nowm test CA"), ca_key.public_key(), 1)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(False, True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (base(name("nowm test signer"), key.public_key(), 2)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    info = c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=cert.public_bytes(pem) + ca.public_bytes(pem),
        private_key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), ta_url=None)
    manifest = {"claim_generator_info": [{"name": "nowm-tests", "version": "0"}], "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}},
        {"label": "cawg.training-mining", "data": {"entries": entries}}]}
    with open(src, "rb") as s, open(dst, "w+b") as d:
        c2pa.Builder(manifest).sign(c2pa.Signer.from_info(info), mime, s, d)


@pytest.mark.parametrize("kind,mime", [("wav16", "audio/wav"), ("mp3", "audio/mpeg"),
                                       ("flac", "audio/flac")])
def test_signed_c2pa_manifest_is_read_and_never_broken(tmp_path, kind, mime):
    src = make_file(tmp_path, kind)
    signed = tmp_path / f"signed{src.suffix}"
    entries = {"cawg.ai_training": {"use": "notAllowed"},
               "cawg.ai_generative_training": {"use": "notAllowed"},
               "cawg.ai_inference": {"use": "allowed"}, "cawg.data_mining": {"use": "allowed"}}
    _sign_c2pa(src, signed, mime, entries)
    report = read_tags(signed)
    cawg = [f for f in report.findings if f.vocabulary == "c2pa-cawg"]
    assert len(cawg) == 1 and cawg[0].field == "cawg.training-mining"
    assert cawg[0].policy == "no-ai-training" and report.policy == "no-ai-training"
    assert any("signingCredential.untrusted" in s for s in report.skipped)  # our throwaway CA
    with pytest.MonkeyPatch.context() as mp:  # without c2pa-python: said, not guessed
        mp.setitem(sys.modules, "c2pa", None)
        report = read_tags(signed)
        assert any("install c2pa-python" in s for s in report.skipped)
        assert not any(f.vocabulary == "c2pa-cawg" for f in report.findings)
    before = signed.read_bytes()
    notes = write_tags(signed, "no-tdm")
    assert "C2PA manifest" in notes[0] and signed.read_bytes() == before
    if kind == "wav16":  # the marked copy does not carry a manifest bound to other audio
        from nowm.files import embed_file

        rep = embed_file(signed, tmp_path / "marked.wav", policy="no-tdm", strength=3)
        assert any("C2PA manifest not carried over" in n for n in rep.tags)
        out = read_tags(tmp_path / "marked.wav")
        assert out.policy == "no-tdm" and not any(f.vocabulary == "c2pa-cawg" for f in out.findings)
        assert b"C2PA" not in (tmp_path / "marked.wav").read_bytes()


# --------------------------------------------------------------------------- embed / detect

def test_embed_file_writes_tags_and_detect_file_reads_them(tmp_path):
    from nowm.files import detect_file, embed_file

    src = make_file(tmp_path, "flac")
    rep = embed_file(src, tmp_path / "out.flac", policy="no-genai-training", strength=3)
    assert rep.tags and not any("not written" in n for n in rep.tags)
    from mutagen.flac import FLAC

    out = FLAC(tmp_path / "out.flac")  # the source's picture and comments are carried over
    assert out.pictures[0].data == PICTURE and out["GENRE"] == ["Test"]
    det = detect_file(tmp_path / "out.flac")
    assert det.tags.policy == "no-genai-training"
    d = det.to_dict()
    assert d["tags"]["policy"] == "no-genai-training"
    json.dumps(d)
    rep = embed_file(src, tmp_path / "plain.flac", tags=False, strength=3)
    assert rep.tags == []
    assert read_tags(tmp_path / "plain.flac").policy is None
    assert detect_file(tmp_path / "plain.flac", tags=False).tags is None


@pytest.mark.parametrize("kind", ["wav16", "mp3", "ogg"])
def test_embed_file_carries_source_tags_over(tmp_path, kind):
    from mutagen import File

    from nowm.files import embed_file

    src = make_file(tmp_path, kind)
    dst = tmp_path / f"out{src.suffix}"
    rep = embed_file(src, dst, policy="no-ai-training", strength=3)
    assert any("carried over" in n for n in rep.tags), rep.tags
    assert read_tags(dst).policy == "no-ai-training"
    if kind == "wav16":
        data = dst.read_bytes()
        assert b"bext" + struct.pack("<I", 602) + b"B" * 602 in data
        assert b"abcd" + struct.pack("<I", 3) + b"odd\0" in data
        assert data.count(b"LIST") == 1 and b"(c) 2024 Band; No AI training" in data
        with open(dst, "rb") as f:  # tags written in place: only libsndfile's old list is blanked
            from nowm.metadata import riff

            ids = [c.cid for c in riff.parse(f, len(data)).chunks]
        assert ids.count(b"JUNK") == 1 and ids[-1] == b"LIST", ids
        assert sf.info(dst).frames == sf.info(src).frames and sf.SoundFile(dst).title == "Song"
    elif kind == "mp3":
        tags = File(dst).tags
        assert tags.getall("APIC")[0].data == PICTURE and tags["TXXX:Mood"].text == ["calm"]
    else:
        a = File(dst)
        assert a["GENRE"] == ["Test"] and a["METADATA_BLOCK_PICTURE"]


def test_cli_no_tags_and_json(tmp_path, capsys):
    from nowm.cli import main

    src = make_file(tmp_path, "wav16")
    assert main(["embed", str(src), "-o", str(tmp_path / "a.wav"), "--strength", "3", "-q"]) == 0
    assert main(["embed", str(src), "-o", str(tmp_path / "b.wav"), "--strength", "3", "-q",
                 "--no-tags"]) == 0
    assert read_tags(tmp_path / "a.wav").policy == "no-ai-training"
    assert read_tags(tmp_path / "b.wav").policy is None
    capsys.readouterr()
    main(["detect", "--json", str(tmp_path / "a.wav")])
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["tags"]["policy"] == "no-ai-training" and rec["tags"]["reserved"] is True
    main(["detect", str(tmp_path / "a.wav")])
    assert "tags say no-ai-training" in capsys.readouterr().out


def test_help_does_not_import_tag_libraries():
    r = subprocess.run([sys.executable, "-c", "import sys, nowm, nowm.cli; nowm.cli.build_parser(); "
                        "print(any(m in sys.modules for m in ('mutagen', 'defusedxml', 'c2pa')))"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
