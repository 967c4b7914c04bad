"""Files: formats and subtypes kept, atomic output, input untouched, blocks seamless."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import soundfile as sf

import nowm
from nowm import files

from .conftest import SAMPLE, synth_music


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def music20():
    return synth_music(20.0, 44100, seed=8)


@pytest.mark.parametrize("fmt,subtype,ext,sr", [
    ("WAV", "PCM_16", ".wav", 44100),
    ("WAV", "PCM_24", ".wav", 48000),
    ("WAV", "FLOAT", ".wav", 44100),
    ("FLAC", "PCM_16", ".flac", 44100),
    ("OGG", "VORBIS", ".ogg", 44100),
    ("OGG", "OPUS", ".opus", 48000),
    ("MP3", "MPEG_LAYER_III", ".mp3", 44100),
])
def test_format_round_trip(tmp_path, music20, fmt, subtype, ext, sr):
    src = tmp_path / f"track{ext}"
    y = music20 if sr == 44100 else synth_music(20.0, sr, seed=8)
    sf.write(src, y * 0.8, sr, format=fmt, subtype=subtype)
    before = _digest(src)
    report = nowm.embed_file(src, strength=2.0)
    assert report.dst == str(tmp_path / f"track.nowm{ext}")
    assert _digest(src) == before  # the input is never modified
    info = sf.info(report.dst)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, subtype, sr, 2)
    det = nowm.detect_file(report.dst)
    assert det.marked and det.policy == "no-ai-training"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_pcm_output_differs_only_where_marked_and_keeps_silence(tmp_path):
    sr = 44100
    y = synth_music(15.0, sr, seed=9)
    y[: 2 * sr] = 0
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(src, y, sr, subtype="PCM_16")
    nowm.embed_file(src, dst)
    a, _ = sf.read(src, dtype="int16")
    b, _ = sf.read(dst, dtype="int16")
    assert a.shape == b.shape
    assert np.array_equal(a[: 2 * sr], b[: 2 * sr])
    assert np.any(a != b)


def test_blocks_are_seamless(tmp_path, monkeypatch):
    """A file processed in many small blocks equals the whole-array embed."""
    sr = 22050
    y = synth_music(12.0, sr, seed=10)
    src, dst = tmp_path / "long.wav", tmp_path / "long.out.wav"
    sf.write(src, y, sr, subtype="FLOAT")
    monkeypatch.setattr(files, "_BLOCK_SECONDS", 1.3)
    nowm.embed_file(src, dst, owner=3)
    got, _ = sf.read(dst, dtype="float32")
    want = nowm.embed(y, sr, owner=3)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 2e-5


@pytest.fixture(scope="module")
def long_marked(tmp_path_factory):
    """75 s of generated music at 16 kHz (FLAC) and its marked copy (no-tdm, owner 77)."""
    tmp = tmp_path_factory.mktemp("long")
    src, out = tmp / "long.flac", tmp / "long.nowm.flac"
    sf.write(src, synth_music(75.0, 16000, seed=12), 16000, subtype="PCM_24")
    nowm.embed_file(src, out, policy="no-tdm", owner=77, strength=2.0)
    return src, out


def test_long_file_detected_in_windows(long_marked):
    src, out = long_marked
    det = nowm.detect_file(out, full=True)
    assert det.marked and det.policy == "no-tdm" and det.owner in (None, 77)
    assert det.duration == pytest.approx(75.0)
    assert not nowm.detect_file(src).marked


def test_long_file_windows_reuse_the_frame_grid_found(long_marked, tmp_path, monkeypatch):
    """A marked file cut 1000 samples in (16 kHz): the first window searches both
    frame grids and finds the mark on the nearer one; later windows search that grid
    alone (moved to their own start), and the verdict and owner id hold."""
    import nowm.files as files
    from nowm.detection import next_lags

    sr = 16000
    _, out = long_marked
    m, _ = sf.read(out)
    cut = tmp_path / "cut.flac"
    sf.write(cut, m[1000:], sr, subtype="PCM_24")
    calls = []
    real = files.detect_16k

    def spy(seg, **kw):
        det = real(seg, **kw)
        calls.append((kw.get("lags"), det._lag))
        return det

    monkeypatch.setattr(files, "detect_16k", spy)
    det = nowm.detect_file(cut, full=True)
    assert det.marked and det.policy == "no-tdm" and det.owner == 77
    assert len(calls) == 3 and calls[0][0] is None
    lag = calls[0][1]  # the embedder's frames now start at 24 (= -1000 % 256): grid 0 is nearer
    assert lag == 0
    # 30 s windows are whole hops long: the grid keeps its place in the next windows
    assert [c[0] for c in calls[1:]] == [(lag,), (lag,)]
    # a window that is not whole hops long moves the grid to the next window's start
    det.marked, det._lag = True, 128
    assert next_lags(det, None, 1000) == ((128 - 1000) % 256,)
    det.marked = False  # an unmarked window keeps the grid found before, moved on
    assert next_lags(det, (24,), 1000) == ((24 - 1000) % 256,)
    assert next_lags(det, None, 1000) is None


def test_sample_round_trip(tmp_path):
    dst = tmp_path / "sample.nowm.flac"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        report = nowm.embed_file(SAMPLE, dst, owner=1)
    assert report.snr_db > 28
    assert nowm.detect_file(dst).marked
    assert not nowm.detect_file(SAMPLE).marked


def test_force_replaces_atomically(tmp_path, music20):
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(src, music20, 44100)
    dst.write_bytes(b"old")
    with pytest.raises(nowm.OutputExistsError, match="--force"):
        nowm.embed_file(src, dst)
    assert dst.read_bytes() == b"old"
    nowm.embed_file(src, dst, force=True)
    assert sf.info(dst).frames == len(music20)


def test_never_overwrites_input(tmp_path, music20):
    src = tmp_path / "a.wav"
    sf.write(src, music20, 44100)
    before = _digest(src)
    with pytest.raises(nowm.OutputExistsError, match="input"):
        nowm.embed_file(src, src, force=True)
    assert _digest(src) == before
