"""Signal attacks for nowm's robustness benchmarks (DESIGN.md section 5).

Every attack is a pure function ``fn(y, sr, rng) -> (y2, sr2)``: ``y`` is float32 audio
[shape=(n, channels)], ``rng`` a `numpy.random.Generator` (used only by attacks that
draw noise), and the result is float32 at rate ``sr2``. Nothing is clipped: float audio
may exceed 1.0 (e.g. after ``gain+10``). `ATTACKS` maps the benchmark names to the
functions; ``mix-6db`` also needs ``other=`` (another excerpt), see `apply_attack`.

Codecs run in memory. MP3 (libmp3lame), AAC (ffmpeg's native encoder) and Opus (libopus)
go through PyAV; this PyAV build has no libvorbis encoder (only ffmpeg's experimental
native one), so Vorbis uses the reference libvorbis encoder through libsndfile instead.
Encoder delay is removed by the containers' own metadata on decoding (LAME/Xing header
for MP3, the MP4 edit list for AAC, the Ogg pre-skip for Opus and the Ogg granule
positions for Vorbis): decoded output lines up with the input to the sample on music
(measured cross-correlation lag 0 for every codec), and is then trimmed or zero-padded
at the end to the input's duration.

`clip_pipeline` turns an attacked file into the 16 kHz mono clip the detector sees.

Run ``python benchmarks/attacks.py`` for a self-test on a corpus track.
"""

from __future__ import annotations

import io
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pedalboard
import pyloudnorm
import scipy.signal
import soundfile as sf
import soxr

__all__ = [
    "ATTACKS",
    "NEEDS_OTHER",
    "CodecUnavailableError",
    "apply_attack",
    "clip_pipeline",
    "mp3",
    "aac",
    "opus",
    "vorbis",
    "resample",
    "gain",
    "lowpass",
    "highpass",
    "noise",
    "reverb",
    "echo",
    "speed",
    "tempo",
    "pitch",
    "mix",
]

Attack = Callable[..., tuple[np.ndarray, int]]

_LAYOUTS = {1: "mono", 2: "stereo"}
_QP2LAMBDA = 118  # ffmpeg's FF_QP2LAMBDA, scale of global_quality


class CodecUnavailableError(RuntimeError):
    """The audio library has no encoder for a codec attack."""


def _as_audio(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2 or y.shape[1] < 1 or y.shape[0] < 1:
        raise ValueError(f"y.shape={y.shape} must be (n, channels) with n, channels >= 1")
    return y


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad the end of ``y`` to ``n`` samples."""
    if len(y) >= n:
        return np.ascontiguousarray(y[:n])
    return np.concatenate([y, np.zeros((n - len(y), y.shape[1]), y.dtype)])


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


# --------------------------------------------------------------------------------------
# Codecs


def _encoder(name: str) -> av.Codec:
    try:
        return av.Codec(name, "w")
    except ValueError as exc:  # av.codec.codec.UnknownCodecError
        raise CodecUnavailableError(
            f"this PyAV/ffmpeg build has no {name!r} encoder (av {av.__version__}); "
            f"audio encoders it has: {sorted(_audio_encoders())}"
        ) from exc


def _audio_encoders() -> set[str]:
    names = set()
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, "w")
        except ValueError:
            continue
        if codec.type == "audio":
            names.add(name)
    return names


def _encoder_rate(codec: av.Codec, sr: int) -> int:
    """``sr`` if the encoder takes it, else the lowest supported rate above it."""
    rates = codec.audio_rates
    if not rates or sr in rates:
        return sr
    above = [r for r in rates if r >= sr]
    return min(above) if above else max(rates)


def _float_format(codec: av.Codec) -> str:
    names = [f.name for f in codec.audio_formats or ()]
    for name in ("fltp", "flt"):
        if name in names:
            return name
    return names[0]  # PyAV converts our fltp frame to it


def _av_encode(y: np.ndarray, sr: int, codec: av.Codec, container: str, bit_rate: int) -> bytes:
    layout = _LAYOUTS[y.shape[1]]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec.name, rate=sr, layout=layout)
        stream.bit_rate = bit_rate
        stream.format = _float_format(codec)
        # One big frame: PyAV re-chunks it to the encoder's frame size.
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y.T), format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _av_decode(data: bytes) -> tuple[np.ndarray, int]:
    chunks = []
    with av.open(io.BytesIO(data), "r") as inp:
        stream = inp.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # keeps layout and rate
        for frame in inp.decode(stream):
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        rate = stream.rate
    return np.concatenate(chunks, axis=1).T.astype(np.float32), rate


def _av_roundtrip(y, sr, *, encoder: str, container: str, kbps: float):
    y = _as_audio(y)
    if y.shape[1] not in _LAYOUTS:
        raise ValueError(f"codec attacks take mono or stereo, not {y.shape[1]} channels")
    codec = _encoder(encoder)
    rate = _encoder_rate(codec, sr)
    if rate != sr:
        y = soxr.resample(y, sr, rate, quality="HQ").astype(np.float32)
    decoded, out_rate = _av_decode(_av_encode(y, rate, codec, container, int(kbps * 1000)))
    return _fit_length(decoded, len(y)), out_rate


def mp3(y, sr, rng=None, *, kbps=128):
    """MP3 round trip: libmp3lame CBR at ``kbps`` kbit/s, same rate out.

    LAME 3.100 in CBR mode comes out about 0.45 dB quieter than its input at every
    frequency (measured on sines and music, with ffmpeg's and libsndfile's decoders);
    that is the encoder's behaviour, left as is.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio, mono or stereo.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator, optional
        Unused (the encoder is deterministic).
    kbps : float
        Bit rate in kbit/s.

    Returns
    -------
    y2 : np.ndarray [shape=(n, channels)]
    sr2 : int
        ``sr`` (or the nearest rate MP3 supports above it).

    Raises
    ------
    CodecUnavailableError
        If PyAV has no libmp3lame encoder.
    """
    return _av_roundtrip(y, sr, encoder="libmp3lame", container="mp3", kbps=kbps)


def aac(y, sr, rng=None, *, kbps=128):
    """AAC-LC round trip with ffmpeg's native ``aac`` encoder in an MP4 container.

    Where the input reaches full scale (float peaks >= 1.0, e.g. Vorbis decoder
    overshoots), this encoder's clipping avoidance lowers those frames' gain by up to
    about 1 dB; below full scale the level is kept within 0.1 dB.

    Parameters and returns as `mp3`.
    """
    return _av_roundtrip(y, sr, encoder="aac", container="mp4", kbps=kbps)


def opus(y, sr, rng=None, *, kbps=64):
    """Opus round trip (libopus in Ogg). Opus runs at 48 kHz: input is resampled to it
    with soxr and the output stays at 48 kHz.

    Parameters and returns as `mp3`; ``sr2`` is 48000.
    """
    y = _as_audio(y)
    if sr != 48000:
        y = soxr.resample(y, sr, 48000, quality="HQ").astype(np.float32)
    return _av_roundtrip(y, 48000, encoder="libopus", container="ogg", kbps=kbps)


def vorbis(y, sr, rng=None, *, quality=2.0):
    """Ogg Vorbis round trip with the reference libvorbis encoder (via libsndfile), VBR.

    PyAV's ffmpeg here has no libvorbis, only ffmpeg's experimental native Vorbis encoder,
    which is not what files in the wild are made with.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator, optional
        Unused.
    quality : float
        libvorbis quality, 0 to 10 (``oggenc -q``); 2 is nominally 96 kbit/s at 44.1 kHz
        stereo (about 100 kbit/s measured on this corpus).

    Returns
    -------
    y2 : np.ndarray [shape=(n, channels)]
    sr2 : int
        ``sr``.
    """
    y = _as_audio(y)
    if not sf.check_format("OGG", "VORBIS"):
        raise CodecUnavailableError(
            f"libsndfile {sf.__libsndfile_version__} cannot write Ogg Vorbis")
    buf = io.BytesIO()
    # libsndfile maps compression_level c to libvorbis quality (1 - c) on a 0..1 scale.
    sf.write(buf, y, sr, format="OGG", subtype="VORBIS", compression_level=1.0 - quality / 10.0)
    buf.seek(0)
    decoded, _ = sf.read(buf, dtype="float32", always_2d=True)
    return _fit_length(decoded, len(y)), sr


# --------------------------------------------------------------------------------------
# Level, filters, rate


def resample(y, sr, rng=None, *, new_sr=16000):
    """Resample to ``new_sr`` with soxr (high quality); the output stays at ``new_sr``."""
    return soxr.resample(_as_audio(y), sr, new_sr, quality="HQ").astype(np.float32), new_sr


def gain(y, sr, rng=None, *, db=10.0):
    """Scale by ``db`` decibels. No clipping: float samples may exceed 1.0."""
    return (_as_audio(y) * np.float32(10.0 ** (db / 20.0))).astype(np.float32), sr


def _butter(y, sr, cutoff_hz, btype, order):
    if not 0 < cutoff_hz < sr / 2:
        raise ValueError(f"cutoff_hz={cutoff_hz} must lie between 0 and sr/2={sr / 2}")
    sos = scipy.signal.butter(order, cutoff_hz, btype=btype, fs=sr, output="sos")
    # Causal, like a real equaliser; its group delay is under a few ms in the passband.
    return scipy.signal.sosfilt(sos, _as_audio(y), axis=0).astype(np.float32), sr


def lowpass(y, sr, rng=None, *, cutoff_hz=5000.0, order=8):
    """Butterworth low-pass (order 8, -48 dB/octave) at ``cutoff_hz``."""
    return _butter(y, sr, cutoff_hz, "lowpass", order)


def highpass(y, sr, rng=None, *, cutoff_hz=300.0, order=4):
    """Butterworth high-pass (order 4, -24 dB/octave) at ``cutoff_hz``."""
    return _butter(y, sr, cutoff_hz, "highpass", order)


# --------------------------------------------------------------------------------------
# Additive noise, room, echo


def _pink(n: int, channels: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) Gaussian noise, flat below 20 Hz so sub-audio does not dominate."""
    spectrum = rng.standard_normal((n // 2 + 1, channels)) + 1j * rng.standard_normal(
        (n // 2 + 1, channels))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    shape = 1.0 / np.sqrt(np.maximum(freqs, 20.0))
    shape[0] = 0.0
    return np.fft.irfft(spectrum * shape[:, None], n, axis=0)


def noise(y, sr, rng, *, snr_db=20.0, color="white"):
    """Add white or pink Gaussian noise at ``snr_db`` below the signal's mean power.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Draws the noise (independent per channel).
    snr_db : float
        Signal power over noise power, both averaged over the whole input and all
        channels.
    color : {"white", "pink"}
        Noise spectrum.

    Returns
    -------
    y2 : np.ndarray [shape=(n, channels)]
    sr2 : int
        ``sr``. Digital silence gets no noise (its SNR is undefined).
    """
    y = _as_audio(y)
    if color == "white":
        n = rng.standard_normal(y.shape)
    elif color == "pink":
        n = _pink(len(y), y.shape[1], sr, rng)
    else:
        raise ValueError(f"color={color!r} must be 'white' or 'pink'")
    target = _power(y) / 10.0 ** (snr_db / 10.0)
    n *= np.sqrt(target / max(_power(n), 1e-30))
    return (y + n).astype(np.float32), sr


def room_response(sr, rng, *, rt60=0.4, channels=2, predelay_s=0.005):
    """Synthetic room impulse response: exponentially decaying Gaussian noise.

    The amplitude falls by 60 dB over ``rt60`` seconds; each channel gets its own noise
    (decorrelated, as two microphones in a room). The direct sound is not included.

    Returns
    -------
    h : np.ndarray [shape=(m, channels)]
        Unit energy per channel; starts after ``predelay_s`` of silence.
    """
    t = np.arange(int(rt60 * sr)) / sr
    tail = rng.standard_normal((len(t), channels)) * np.exp(-np.log(1000.0) * t / rt60)[:, None]
    tail /= np.sqrt(np.sum(tail**2, axis=0))
    return np.concatenate([np.zeros((int(predelay_s * sr), channels)), tail])


def reverb(y, sr, rng, *, rt60=0.4, drr_db=3.0):
    """Add a synthetic room: dry signal plus its convolution with `room_response`.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Draws the room response.
    rt60 : float
        Reverberation time in seconds.
    drr_db : float
        Direct-to-reverberant energy ratio: the reverberant part is this many dB below
        the dry signal (+3 dB is a small room heard from a few metres, or a typical
        "room" plug-in setting).

    Returns
    -------
    y2 : np.ndarray [shape=(n, channels)]
        Tail cut at the input's length.
    sr2 : int
        ``sr``.
    """
    y = _as_audio(y)
    h = room_response(sr, rng, rt60=rt60, channels=y.shape[1])
    wet = scipy.signal.oaconvolve(y, h, mode="full", axes=0)[: len(y)]
    return (y + 10.0 ** (-drr_db / 20.0) * wet).astype(np.float32), sr


def echo(y, sr, rng=None, *, delay_s=0.150, db=-6.0):
    """Add one echo ``delay_s`` later at ``db`` relative to the signal."""
    y = _as_audio(y)
    d = int(round(delay_s * sr))
    out = y.copy()
    out[d:] += np.float32(10.0 ** (db / 20.0)) * y[: len(y) - d]
    return out, sr


# --------------------------------------------------------------------------------------
# Time and pitch


def speed(y, sr, rng=None, *, factor=1.05):
    """Play ``factor`` times faster, like a tape or a wrong sample rate: pitch and
    tempo both change. Implemented as a soxr resample from ``sr * factor`` to ``sr``.

    Returns ``round(n / factor)`` samples at ``sr``.
    """
    return soxr.resample(_as_audio(y), sr * factor, sr, quality="HQ").astype(np.float32), sr


def _rubberband(y, sr, stretch, semitones):
    out = pedalboard.time_stretch(np.ascontiguousarray(_as_audio(y).T), sr,
                                  stretch_factor=stretch, pitch_shift_in_semitones=semitones)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def tempo(y, sr, rng=None, *, factor=1.03):
    """Change tempo by ``factor`` (>1 is faster, shorter), keeping pitch
    (pedalboard's Rubber Band time stretch)."""
    return _rubberband(y, sr, factor, 0.0), sr


def pitch(y, sr, rng=None, *, cents=50.0):
    """Shift pitch by ``cents`` (100 cents = 1 semitone), keeping tempo and length
    (pedalboard's Rubber Band pitch shift)."""
    return _fit_length(_rubberband(y, sr, 1.0, cents / 100.0), len(y)), sr


# --------------------------------------------------------------------------------------
# Mixing


def _fit_channels(other: np.ndarray, channels: int) -> np.ndarray:
    if other.shape[1] == channels:
        return other
    if other.shape[1] == 1:
        return np.repeat(other, channels, axis=1)
    return np.repeat(other.mean(axis=1, keepdims=True), channels, axis=1)


def mix(y, sr, rng, *, other=None, other_sr=None, level_db=-6.0):
    """Mix the signal with another recording (e.g. another corpus excerpt).

    ``other`` is scaled so its mean power is ``level_db`` relative to ``y``'s: at the
    default -6 dB the watermarked audio dominates by 6 dB, as when a second track or a
    voice is laid over it. Use ``level_db=+6`` for the reverse reading of "mixed under
    another track at -6 dB" (the marked track 6 dB below the other).

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Picks where in ``other`` to start when it is longer than ``y``.
    other : np.ndarray [shape=(m, channels')]
        The other recording; looped if shorter than ``y``; mono/stereo adapted.
    other_sr : int, optional
        Its rate if not ``sr``; it is then resampled.
    level_db : float
        Power of ``other`` relative to ``y`` in dB.

    Returns
    -------
    y2 : np.ndarray [shape=(n, channels)]
    sr2 : int
        ``sr``.

    Raises
    ------
    ValueError
        If ``other`` is missing.
    """
    y = _as_audio(y)
    if other is None:
        raise ValueError("mix needs other= (another recording, e.g. a corpus excerpt)")
    other = _as_audio(other)
    if other_sr is not None and other_sr != sr:
        other = soxr.resample(other, other_sr, sr, quality="HQ").astype(np.float32)
    other = _fit_channels(other, y.shape[1])
    start = int(rng.integers(0, len(other) - len(y) + 1)) if len(other) > len(y) else 0
    other = np.resize(other[start:], (len(y), other.shape[1]))  # loops if short
    scale = np.sqrt(_power(y) * 10.0 ** (level_db / 10.0) / max(_power(other), 1e-30))
    return (y + np.float32(scale) * other).astype(np.float32), sr


# --------------------------------------------------------------------------------------
# Registry


def _clean(y, sr, rng=None):
    """No change (a copy)."""
    return _as_audio(y).copy(), sr


ATTACKS: dict[str, Attack] = {
    "clean": _clean,
    "mp3-128": partial(mp3, kbps=128),
    "mp3-64": partial(mp3, kbps=64),
    "aac-128": partial(aac, kbps=128),
    "aac-64": partial(aac, kbps=64),
    "opus-64": partial(opus, kbps=64),
    "opus-32": partial(opus, kbps=32),
    "vorbis-96": partial(vorbis, quality=2.0),
    "resample-16k": partial(resample, new_sr=16000),
    "resample-22k": partial(resample, new_sr=22050),
    "resample-24k": partial(resample, new_sr=24000),
    "gain+10": partial(gain, db=10.0),
    "gain-10": partial(gain, db=-10.0),
    "lowpass-5k": partial(lowpass, cutoff_hz=5000.0),
    "highpass-300": partial(highpass, cutoff_hz=300.0),
    "noise-white-20db": partial(noise, snr_db=20.0, color="white"),
    "noise-pink-20db": partial(noise, snr_db=20.0, color="pink"),
    "reverb": partial(reverb, rt60=0.4, drr_db=3.0),
    "echo": partial(echo, delay_s=0.150, db=-6.0),
    "speed+5": partial(speed, factor=1.05),
    "speed-5": partial(speed, factor=0.95),
    "tempo+3": partial(tempo, factor=1.03),
    "tempo-3": partial(tempo, factor=0.97),
    "pitch+50c": partial(pitch, cents=50.0),
    "pitch-50c": partial(pitch, cents=-50.0),
    "mix-6db": partial(mix, level_db=-6.0),
}

#: Attacks that need ``other=`` (another recording).
NEEDS_OTHER = frozenset({"mix-6db"})


def apply_attack(name, y, sr, rng, *, other=None, other_sr=None):
    """Run attack ``name``, passing ``other`` only to the attacks that need it.

    Parameters
    ----------
    name : str
        A key of `ATTACKS`.
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Randomness for the attacks that use it.
    other : np.ndarray [shape=(m, channels')], optional
        Required by the attacks in `NEEDS_OTHER`.
    other_sr : int, optional
        Rate of ``other`` if not ``sr``.

    Returns
    -------
    y2 : np.ndarray [shape=(n2, channels)]
    sr2 : int
    """
    if name not in ATTACKS:
        raise KeyError(f"attack {name!r} is unknown; known: {', '.join(ATTACKS)}")
    if name in NEEDS_OTHER:
        return ATTACKS[name](y, sr, rng, other=other, other_sr=other_sr)
    return ATTACKS[name](y, sr, rng)


# --------------------------------------------------------------------------------------
# From attacked file to detector clip


def clip_pipeline(y, sr, clip_s, rng, target_lufs=-23.0):
    """Turn (attacked) audio into a detector clip: mono, 16 kHz, random crop, loudness.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        float32 audio.
    sr : int
        Its sample rate in Hz.
    clip_s : float
        Clip length in seconds (at least 0.4 s, one loudness block).
    rng : np.random.Generator
        Draws the crop start, uniform over all positions.
    target_lufs : float
        Integrated loudness (ITU-R BS.1770, pyloudnorm) of the result. A clip that is
        silent, or below the -70 LUFS absolute gate, is left at its level.

    Returns
    -------
    clip : np.ndarray [shape=(round(clip_s * 16000),), dtype=float32]

    Raises
    ------
    ValueError
        If the audio is shorter than ``clip_s`` after resampling.
    """
    mono = _as_audio(y).mean(axis=1)
    if sr != 16000:
        mono = soxr.resample(mono, sr, 16000, quality="HQ")
    n = int(round(clip_s * 16000))
    if not 0.4 * 16000 <= n <= len(mono):
        raise ValueError(f"clip_s={clip_s} must be >= 0.4 s and fit in "
                         f"{len(mono) / 16000:.3f} s of audio")
    start = int(rng.integers(0, len(mono) - n + 1))
    clip = mono[start : start + n].astype(np.float64)
    loudness = pyloudnorm.Meter(16000).integrated_loudness(clip)
    if np.isfinite(loudness) and loudness > -70.0:
        clip *= 10.0 ** ((target_lufs - loudness) / 20.0)
    return clip.astype(np.float32)


# --------------------------------------------------------------------------------------


def _rms_db(y: np.ndarray) -> float:
    return 10.0 * np.log10(max(_power(y), 1e-30))


def main(seconds: float = 5.0) -> int:
    """Run every attack on ``seconds`` of a corpus track and print a line for each."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import corpus  # noqa: PLC0415  (benchmarks/ is not a package)

    rng = np.random.default_rng(20240601)
    tracks = corpus.list_tracks()
    main_ex, other_ex = corpus.excerpts([tracks[0], tracks[-1]], 1, seconds, rng)
    y, other, sr = corpus.load_excerpt(main_ex), corpus.load_excerpt(other_ex), 44100
    print(f"{seconds:g} s of {main_ex.track} from {main_ex.start:.1f} s "
          f"(mix partner: {other_ex.track})")
    print(f"{'attack':<18} {'rate':>6} {'samples':>8} {'dRMS dB':>8} {'ms':>7}")
    failures = 0
    for name in ATTACKS:
        t0 = time.perf_counter()
        try:
            y2, sr2 = apply_attack(name, y, sr, rng, other=other)
        except CodecUnavailableError as exc:
            failures += 1
            print(f"{name:<18} unavailable: {exc}")
            continue
        ms = 1000 * (time.perf_counter() - t0)
        print(f"{name:<18} {sr2:>6} {len(y2):>8} {_rms_db(y2) - _rms_db(y):>+8.2f} {ms:>7.1f}")
    clip = clip_pipeline(y, sr, min(3.0, seconds), rng)
    print(f"clip_pipeline: {len(clip)} samples at 16 kHz, "
          f"{pyloudnorm.Meter(16000).integrated_loudness(clip.astype(np.float64)):.1f} LUFS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
