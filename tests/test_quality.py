"""Smoke test of benchmarks/quality.py: marking, SNR, report and plot, ViSQOL skipped.

ViSQOL itself needs a separate Python 3.12 environment (see the README), which CI
does not have; the benchmark is run by hand.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("matplotlib", reason="quality.py's residual plot needs matplotlib "
                                         "(in the test extra)")

QUALITY = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("nowm_bench_quality", QUALITY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_snr_report_and_plot_without_visqol(quality, sample, tmp_path):
    import nowm

    y, sr = sample
    clip = y[5 * sr:9 * sr]  # 4 s of real music
    path = tmp_path / "clip.wav"
    sf.write(path, clip, sr, subtype="FLOAT")
    out = tmp_path / "results"

    status = quality.main(["--input", str(path), "--seconds", "4", "--no-visqol",
                           "--strength", "1,2", "--out", str(out), "--quiet"])

    assert status == 0
    record = json.loads((out / "quality_strength.json").read_text())
    (excerpt,) = record["excerpts"]
    assert excerpt["name"] == "clip.wav" and excerpt["visqol_own"] is None
    # The SNR reported is the one of nowm.embed's own output on the same audio.
    for s in (1.0, 2.0):
        expected = quality.snr_db(clip, nowm.embed(clip, sr, strength=s))
        assert excerpt["snr_db"][f"{s:g}"] == pytest.approx(expected, abs=1e-3)
        assert 10.0 < expected < 60.0
    # Twice the strength is a louder residual: about 6 dB less SNR.
    assert excerpt["snr_db"]["1"] - excerpt["snr_db"]["2"] == pytest.approx(6.0, abs=1.0)
    assert [s["strength"] for s in record["summary"]] == [1.0, 2.0]
    assert "visqol_pass" not in record["summary"][0]
    report = (out / "quality_strength.md").read_text()
    assert "clip.wav" in report and "ViSQOL not measured" in report
    assert (out / "residual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_visqol_python_fails_fast_with_the_fix(quality, tmp_path, capsys):
    missing = tmp_path / "no-such-venv" / "bin" / "python"
    status = quality.main(["--input", str(tmp_path / "never-read.wav"),
                           "--visqol-python", str(missing), "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "audio-samples-qoe" in err and "--no-visqol" in err
    assert not list(tmp_path.glob("quality*"))


def test_quietest_window_skips_silence_and_finds_the_quiet_passage(quality, rng):
    sr = quality.SR
    loud = rng.normal(0, 0.1, (10 * sr, 2))
    soft = rng.normal(0, 0.003, (4 * sr, 2))
    silence = np.zeros((6 * sr, 2))
    y = np.concatenate([loud, soft, loud[:3 * sr], silence]).astype(np.float32)
    # The 4 s soft passage is quieter than anything but the silence, which is skipped.
    assert quality.quietest_window(y, 4.0) == 10
    assert quality.quietest_window(silence.astype(np.float32), 4.0) is None
