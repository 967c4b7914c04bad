"""Every bad input gets a clear error naming the file and the fix, and loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import nowm
from nowm.cli import main

from .conftest import synth_music


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    p = d / "good.wav"
    sf.write(p, synth_music(20.0, 44100, seed=13), 44100, subtype="PCM_16")
    return p


def _cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_missing_file(tmp_path, capsys):
    p = tmp_path / "nope.wav"
    with pytest.raises(nowm.AudioIOError, match="no such file"):
        nowm.detect_file(p)
    code, _, err = _cli(["embed", p], capsys)
    assert code == 3 and "nope.wav" in err and "no such file" in err


def test_directory(tmp_path, capsys):
    with pytest.raises(nowm.AudioIOError, match="directory"):
        nowm.embed_file(tmp_path)
    code, out, err = _cli(["detect", "--json", tmp_path], capsys)
    rec = json.loads(out)
    assert code == 3 and rec["error"] and "directory" in rec["error"] and rec["marked"] is False


def test_not_audio(tmp_path, capsys):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 50)
    with pytest.raises(nowm.AudioFormatError, match="not a readable audio file"):
        nowm.detect_file(p)
    code, _, err = _cli(["detect", p], capsys)
    assert code == 3 and "notes.wav" in err
    noise = tmp_path / "noise.mp3"  # random bytes: libsndfile's own words would say "does not exist"
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(nowm.AudioFormatError, match="noise.mp3.*unrecognised format or corrupt"):
        nowm.detect_file(noise)
    verdict = nowm.check(noise)  # the ingest path reports instead of raising
    assert verdict.status == "unreadable" and "does not exist" not in verdict.error


def test_empty_file(tmp_path):
    p = tmp_path / "empty.flac"
    p.write_bytes(b"")
    with pytest.raises(nowm.AudioFormatError, match="empty file"):
        nowm.embed_file(p)


def test_truncated_and_corrupt(tmp_path, good):
    data = good.read_bytes()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(data[: len(data) // 3])
    det = nowm.detect_file(trunc)  # what is there is examined, its true length reported
    assert det.duration == pytest.approx(sf.info(trunc).duration, abs=0.5) or det.duration < 20
    corrupt = tmp_path / "corrupt.flac"
    sf.write(corrupt, synth_music(5.0, 44100, seed=1), 44100)
    raw = bytearray(corrupt.read_bytes())
    raw[8:200] = os.urandom(192)
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(nowm.NowmError):
        nowm.detect_file(corrupt)


def test_zero_length_audio(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros((0, 2)), 44100)
    with pytest.raises(nowm.AudioFormatError, match="no audio"):
        nowm.embed_file(p)
    with pytest.raises(nowm.ParameterError, match="empty"):
        nowm.embed(np.zeros(0, np.float32), 44100)


def test_too_short_for_owner_says_what_it_embedded(tmp_path, capsys):
    p = tmp_path / "short.wav"
    sf.write(p, synth_music(6.0, 44100, seed=2), 44100)
    code, out, err = _cli(["embed", p, "--owner", "5"], capsys)
    assert code == 0
    assert "owner not embedded" in out and "policy" in err
    report = nowm.embed_file(p, tmp_path / "s2.wav", owner=5)
    assert not report.owner_embedded and report.policy == "no-ai-training"


def test_nan_and_inf(tmp_path):
    y = synth_music(5.0, 16000, seed=3)
    y[100, 0] = np.nan
    with pytest.raises(nowm.ParameterError, match="NaN"):
        nowm.embed(y, 16000)
    y[100, 0] = np.inf
    with pytest.raises(nowm.ParameterError, match="NaN or infinite"):
        nowm.detect(y, 16000)
    p = tmp_path / "nan.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    with pytest.raises(nowm.AudioFormatError, match="NaN"):
        nowm.embed_file(p)
    assert not (tmp_path / "nan.nowm.wav").exists()
    # the reading paths of detection (downmix kernel) name the file too
    with pytest.raises(nowm.AudioFormatError, match="nan.wav: contains NaN"):
        nowm.detect_file(p)
    v = nowm.check(p)
    assert v.status == "unreadable" and "NaN" in v.error


def test_unknown_policy_and_owner_range(good, capsys):
    with pytest.raises(nowm.ParameterError, match="policy='no-robots' is unknown"):
        nowm.embed(np.zeros(16000 * 2) + 0.1, 16000, policy="no-robots")
    with pytest.raises(nowm.ParameterError, match="out of range"):
        nowm.embed(np.zeros(16000 * 2) + 0.1, 16000, owner=2**32)
    with pytest.raises(nowm.ParameterError):
        nowm.embed(np.zeros(16000 * 2) + 0.1, 16000, owner=-1)
    assert _cli(["embed", good, "--policy", "no-robots"], capsys)[0] == 2
    assert _cli(["embed", good, "--owner", "0x100000000"], capsys)[0] == 2
    assert _cli(["embed", good, "--owner", "twelve"], capsys)[0] == 2


def test_existing_output_without_force(good, tmp_path, capsys):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    code, _, err = _cli(["embed", good, "-o", out], capsys)
    assert code == 3 and "--force" in err and out.read_bytes() == b"keep me"


def test_bad_key_files(tmp_path, good, capsys):
    missing = tmp_path / "none.key"
    with pytest.raises(nowm.KeyFileError, match="not found"):
        nowm.load_key(missing)
    bad = tmp_path / "bad.key"
    bad.write_text("{not json")
    with pytest.raises(nowm.KeyFileError, match="malformed"):
        nowm.load_key(bad)
    bad.write_text(json.dumps({"format": "nowm-key", "version": 1, "secret": "abcd"}))
    with pytest.raises(nowm.KeyFileError, match="malformed"):
        nowm.load_key(bad)
    code, _, err = _cli(["detect", good, "--key", bad], capsys)
    assert code == 3 and "bad.key" in err
    unreadable = tmp_path / "locked.key"
    nowm.save_key(nowm.generate_key(), unreadable)
    assert oct(unreadable.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() != 0:  # root reads anything
        unreadable.chmod(0)
        with pytest.raises(nowm.KeyFileError, match="cannot read"):
            nowm.load_key(unreadable)
    d = tmp_path / "dir.key"
    d.mkdir()
    with pytest.raises(nowm.KeyFileError, match="directory"):
        nowm.load_key(d)


def test_bad_threshold_is_usage_error(good, capsys):
    assert _cli(["detect", good, "--threshold", "2"], capsys)[0] == 2


def test_cli_embed_detect_keygen_and_exit_codes(tmp_path, good, capsys):
    key = tmp_path / "me.key"
    assert _cli(["keygen", key], capsys)[0] == 0
    assert _cli(["keygen", key], capsys)[0] == 3  # exists
    out = tmp_path / "marked.wav"
    code, text, _ = _cli(["embed", good, "-o", out, "--owner", "0x2A", "--key", key,
                          "--strength", "2"], capsys)
    assert code == 0 and "marked no-ai-training" in text
    code, text, _ = _cli(["detect", "--json", out], capsys)
    rec = json.loads(text)
    assert code == 0 and rec["marked"] and rec["policy"] == "no-ai-training"
    for field in ("path", "marked", "false_alarm", "policy", "owner", "duration", "error"):
        assert field in rec
    assert _cli(["detect", "--key", key, out], capsys)[0] == 0
    code, text, _ = _cli(["detect", "--json", out, good], capsys)
    assert code == 1 and len(text.strip().splitlines()) == 2
    code, text, _ = _cli(["detect", "--json", out, tmp_path / "missing.wav"], capsys)
    assert code == 3 and len(text.strip().splitlines()) == 2


def test_python_m_and_help_are_fast_and_clean():
    r = subprocess.run([sys.executable, "-m", "nowm", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "embed" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import sys, nowm.cli; print('numba' in sys.modules)"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "False"  # heavy imports stay inside the commands
    r = subprocess.run([sys.executable, "-m", "nowm", "detect"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_numba_start_skips_blas_probe_and_restores_scipy():
    # the command line sets numba up without importing scipy.linalg (start-up time);
    # afterwards scipy.linalg must import normally and the kernels must run
    code = ("import sys, numpy as np; from nowm.cli import _start_numba; _start_numba(); "
            "import numba.np.arraymath as am; print(am._HAVE_BLAS, 'scipy.linalg' in sys.modules); "
            "import scipy.linalg.cython_blas; from nowm import _kernels; o = np.empty(3); "
            "print(_kernels.downmix(np.ones((3, 2)), 0.5, 4, o)[0])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "1.5"]


def test_detect_says_too_short_and_silent(tmp_path, capsys):
    short, silent = tmp_path / "short.wav", tmp_path / "silent.wav"
    brief, long = tmp_path / "brief.wav", tmp_path / "long.wav"
    sf.write(short, synth_music(1.0, 16000, seed=4), 16000)
    sf.write(silent, np.zeros((5 * 16000, 2)), 16000)
    sf.write(brief, synth_music(2.0, 16000, seed=4), 16000)
    sf.write(long, synth_music(5.0, 16000, seed=4), 16000)
    code, text, _ = _cli(["detect", short, silent, brief, long], capsys)
    lines = text.strip().splitlines()
    assert code == 1 and "too short to judge (1.0 s" in lines[0] and "digital silence" in lines[1]
    # an unmarked verdict on less than 3 s says that it is weak; from 3 s it does not
    assert "not marked" in lines[2] and "often missed" in lines[2]
    assert "not marked" in lines[3] and "often missed" not in lines[3]
