"""M4A / MP4 / AAC through PyAV: codec, bitrate, rate and tags kept; mark detected."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import nowm

from .conftest import synth_music

av = pytest.importorskip("av", reason="PyAV is needed for M4A/AAC (pip install 'nowm[m4a]')")
mutagen_mp4 = pytest.importorskip("mutagen.mp4", reason="mutagen is needed to carry M4A tags over")


def _encode(path, y, sr, *, muxer, codec="aac", bit_rate=128000, sample_fmt="fltp"):
    layout = "stereo" if y.shape[1] == 2 else "mono"
    with av.open(str(path), "w", format=muxer) as out:
        st = out.add_stream(codec, rate=sr, layout=layout)
        if codec == "aac":
            st.bit_rate = bit_rate
        else:
            st.format = sample_fmt
        planes = np.ascontiguousarray(y.T)
        if sample_fmt == "s16p":
            planes = np.round(planes * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(planes, format=sample_fmt, layout=layout)
        frame.sample_rate = sr
        frame.pts = 0
        for packet in st.encode(frame):
            out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    return Path(path)


def _probe(path):
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        return st.codec_context.name, st.rate, st.codec_context.channels, st.bit_rate


@pytest.fixture(scope="module")
def music():
    return synth_music(8.0, 48000, seed=31)


def test_m4a_aac_kept_at_source_bitrate_and_rate_with_tags(tmp_path, music):
    src = _encode(tmp_path / "song.m4a", music, 48000, muxer="ipod", bit_rate=96000)
    tags = mutagen_mp4.MP4(src)
    tags["\xa9nam"] = ["A title"]
    tags["\xa9ART"] = ["An artist"]
    tags["covr"] = [mutagen_mp4.MP4Cover(b"\x89PNG fake cover", mutagen_mp4.MP4Cover.FORMAT_PNG)]
    tags["----:com.apple.iTunes:LABEL"] = [b"Some label"]
    tags.save()
    before = hashlib.sha256(src.read_bytes()).hexdigest()

    report = nowm.embed_file(src, strength=3.0)
    out = Path(report.dst)
    assert out.name == "song.nowm.m4a" and (report.format, report.subtype) == ("MP4", "AAC")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    codec, rate, channels, bit_rate = _probe(out)
    assert (codec, rate, channels) == ("aac", 48000, 2)
    assert abs(bit_rate - 96000) < 0.15 * 96000  # the source's quality, not a default
    assert abs(report.duration - 8.0) < 0.05  # encoder padding dropped
    got = mutagen_mp4.MP4(out).tags
    assert got["\xa9nam"] == ["A title"] and got["\xa9ART"] == ["An artist"]
    assert bytes(got["covr"][0]) == b"\x89PNG fake cover"
    assert bytes(got["----:com.apple.iTunes:LABEL"][0]) == b"Some label"
    det = nowm.detect_file(out)
    assert det.marked and det.policy == "no-ai-training"
    assert not nowm.detect_file(src).marked
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_alac_stays_lossless_and_raw_aac(tmp_path, music):
    src = _encode(tmp_path / "lossless.m4a", music, 48000, muxer="ipod", codec="alac", sample_fmt="s16p")
    report = nowm.embed_file(src, tmp_path / "out.m4a", strength=3.0, policy="no-tdm")
    assert _probe(report.dst)[:2] == ("alac", 48000) and report.subtype == "ALAC"
    assert 15 < report.snr_db < 80  # strength 3: about 10 dB below the default
    det = nowm.detect_file(report.dst)
    assert det.marked and det.policy == "no-tdm"

    raw = _encode(tmp_path / "raw.aac", music, 48000, muxer="adts", bit_rate=128000)
    report = nowm.embed_file(raw, strength=3.0)
    assert Path(report.dst).suffix == ".aac" and _probe(report.dst)[:2] == ("aac", 48000)
    assert nowm.detect_file(report.dst).marked


def test_m4a_errors_are_clear(tmp_path):
    bad = tmp_path / "broken.m4a"
    bad.write_bytes(b"\0\0\0\x18ftypM4A " + b"\1" * 200)
    with pytest.raises(nowm.AudioFormatError, match="broken.m4a"):
        nowm.embed_file(bad)
    with pytest.raises(nowm.AudioFormatError, match="broken.m4a"):
        nowm.detect_file(bad)
    with pytest.raises(nowm.AudioIOError, match="no such file"):
        nowm.embed_file(tmp_path / "missing.m4a")


def test_m4a_in_a_catalog(tmp_path, music):
    src = tmp_path / "src"
    src.mkdir()
    _encode(src / "a.m4a", music, 48000, muxer="ipod", bit_rate=128000)
    report = nowm.mark_catalog(src, tmp_path / "dst", strength=3.0)
    assert [(f.rel, f.status, f.verified) for f in report.files] == [("a.m4a", "marked", True)]
    assert _probe(tmp_path / "dst" / "a.m4a")[0] == "aac"
