"""Shared fixtures: seeded randomness, the shipped real-music sample, generated music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "orbital-elevator-excerpt.flac"


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def sample():
    """The shipped real-music excerpt: float32 (n, 2) at 44.1 kHz."""
    y, sr = sf.read(SAMPLE, dtype="float32")
    return y, sr


def synth_music(seconds: float, sr: int, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Music-like test signal: chords of harmonic voices with vibrato, changing every
    half second, a noisy percussion track, a crescendo, and a quiet passage."""
    r = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    note_len = int(0.5 * sr)
    for start in range(0, n, note_len):
        seg = slice(start, min(n, start + note_len))
        tt = t[seg] - t[start]
        env = np.minimum(1, tt / 0.02) * np.exp(-tt * 2.0)
        for _ in range(5):
            f0 = 110 * 2 ** (r.integers(0, 36) / 12)
            vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * tt)
            for h in range(1, 9):
                if f0 * h < sr / 2.2:
                    y[seg] += env * 0.3 / h * np.sin(2 * np.pi * f0 * h * vib * tt + r.uniform(0, 6.28))
    beats = np.zeros(n)
    beats[:: int(0.25 * sr)] = 1.0
    kernel = r.normal(size=int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr))
    y += 1.5 * np.convolve(beats, kernel)[:n]
    # a breathy pad: noise shaped to fall ~6 dB per octave, as real mixes do
    pad = np.cumsum(r.normal(size=n))
    pad -= np.convolve(pad, np.ones(256) / 256, mode="same")
    y += 0.02 * pad / (np.std(pad) + 1e-12) * 10
    y *= 0.3 + 0.7 * t / max(t[-1], 1e-9)  # crescendo
    q0, q1 = int(0.6 * n), int(0.7 * n)
    y[q0:q1] *= 0.03  # quiet passage, -30 dB
    y /= np.abs(y).max() / 0.5
    out = np.stack([y * (1 - 0.1 * c) + 0.01 * r.normal(size=n) * (c % 2) for c in range(channels)], 1)
    return out.astype(np.float32)


@pytest.fixture(scope="session")
def music():
    """30 s of generated music at 44.1 kHz stereo."""
    return synth_music(30.0, 44100, seed=1), 44100


def to_clip(y, sr, seconds, rng):
    """Dataset-builder pipeline: mono, 16 kHz, random crop."""
    import soxr

    mono = np.asarray(y, np.float64).reshape(len(y), -1).mean(axis=1)
    x = soxr.resample(mono, sr, 16000)
    n = int(seconds * 16000)
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start:start + n]
