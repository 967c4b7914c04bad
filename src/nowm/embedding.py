"""Embedding: add the keyed, host-shaped watermark to audio at its own rate.

The watermark is computed on the 16 kHz mono downmix (the detection domain): an
STFT whose tiles are scaled by ``1 + delta * chip``, i.e. a signal proportional
to the host's own spectrum in each tile. It is resampled to the native rate and
added to every channel, faded out next to digital silence, and attenuated by a
gentle limiter wherever adding it would exceed full scale.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _kernels, _stft, audio, ecc, payload
from ._scheme import SCHEME, Scheme, band_weights, patterns
from .errors import ParameterError, TooShortError
from .keys import PUBLIC_KEY, Key, resolve_key
from .policy import DEFAULT_POLICY, get_policy

__all__ = ["embed", "check_owner", "chip_grid", "NowmWarning",
           "MIN_EMBED_SECONDS", "OWNER_SECONDS"]

#: Shortest audio that can carry a mark at all.
MIN_EMBED_SECONDS = 1.0
#: Audio shorter than this carries the policy, but its owner id cannot be
#: recovered reliably (measured: ``benchmarks/robustness.py``).
OWNER_SECONDS = 20.0
_SILENCE_RUN = 0.002  # seconds of exact zeros that count as digital silence
_SILENCE_RAMP = 0.004  # fade of the watermark next to silence, seconds
_LIMITER_RELEASE = 0.002


class NowmWarning(UserWarning):
    """Something was embedded, but less than asked (e.g. no owner id)."""


def check_owner(owner) -> int:
    """Validate a rightsholder id: an integer in [0, 2**32)."""
    if isinstance(owner, bool) or not isinstance(owner, (int, np.integer)):
        raise ParameterError(f"owner={owner!r} must be an integer in 0..{2**32 - 1}")
    if not 0 <= int(owner) < 2**32:
        raise ParameterError(f"owner={owner} is out of range: it must be in 0..{2**32 - 1} (32 bits)")
    return int(owner)


def check_strength(strength) -> float:
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise ParameterError(f"strength={strength!r} must be a number") from None
    if not 0.0 < s <= 4.0 or not np.isfinite(s):
        raise ParameterError(f"strength={strength!r} must be in (0, 4]; 1 is the tuned default")
    return s


def chip_grid(key: Key, policy_code: int, owner: int, scheme: Scheme = SCHEME) -> np.ndarray:
    """The +-1 chip of every tile of one period: sync pattern plus coded payload."""
    pat = patterns(key, scheme)
    coded = ecc.encode(payload.pack(policy_code, owner)).astype(np.float64) * 2.0 - 1.0
    data = np.where(pat.data_bit >= 0, pat.data_pn * coded[np.maximum(pat.data_bit, 0)], 0.0)
    return pat.sync[policy_code] + data


class _Bands:
    """Embedding band weights over FFT bins (cached per scheme)."""

    _cache: dict = {}

    @classmethod
    def get(cls, scheme: Scheme):
        if scheme not in cls._cache:
            cls._cache[scheme] = band_weights(scheme.band_centres(), scheme.n_fft, scheme.sr,
                                              scheme.bands_per_octave)
        return cls._cache[scheme]

    @classmethod
    def window(cls, scheme: Scheme) -> np.ndarray:
        """The analysis and synthesis window, float32."""
        key = ("window", scheme.n_fft)
        if key not in cls._cache:
            cls._cache[key] = _stft.sqrt_hann(scheme.n_fft).astype(np.float32)
        return cls._cache[key]


def watermark16(x16: np.ndarray, start: int, chips: np.ndarray, depth: float,
                scheme: Scheme = SCHEME) -> np.ndarray:
    """Watermark signal for a stretch of the 16 kHz downmix.

    Parameters
    ----------
    x16 : np.ndarray [shape=(n,)]
        Downmix at 16 kHz; its first sample is sample ``start`` of the whole file.
    start : int
        Global index of ``x16[0]``, so blocks of a long file share the tile grid.
    chips : np.ndarray [shape=(period_tiles, n_bands)]
        Chip per tile (sum of the layers' grids).
    depth : float
        Modulation depth ``delta * strength``.

    Returns
    -------
    np.ndarray [shape=(n,)], float32
        Computed in single precision (its rounding error is about 140 dB below
        the watermark's level).
    """
    n_fft, hop, tf = scheme.n_fft, scheme.hop, scheme.tile_frames
    t0, t1 = _stft.frame_range(start, len(x16), n_fft, hop)
    win = _Bands.window(scheme)
    spec = _stft.rfft(_stft.windowed_frames(x16, start, t0, t1, n_fft, hop, win))
    starts, stops, weights = _Bands.get(scheme)
    u0 = t0 // tf
    tiles = np.arange(u0, (t1 - 1) // tf + 1)
    amp = _depths(spec, t0 - u0 * tf, len(tiles), scheme) * depth
    amp *= chips[tiles % scheme.period_tiles]
    _kernels.modulate(spec, amp, t0 - u0 * tf, tf, starts, stops, weights)
    return _stft.overlap_add(_stft.irfft(spec, n_fft), start, t0, len(x16), hop, win)


def _depths(spec, lead, n_tiles, scheme: Scheme) -> np.ndarray:
    """Relative modulation depth (1.0 = ``scheme.delta``) of ``n_tiles`` tiles, shape
    ``(n_tiles, n_bands)``, from the masking model; frame ``t`` of ``spec`` is in
    tile ``(t + lead) // tile_frames``."""
    starts, stops, weights = _Bands.get(scheme)
    tile_power = np.empty((n_tiles, len(starts)))
    total = np.empty(n_tiles)
    _kernels.tile_power(spec, lead, scheme.tile_frames, starts, stops, weights, tile_power, total)
    out = np.empty_like(tile_power)
    m = scheme.masking
    _kernels.masked_depth(tile_power, total, 10 ** (-m[0] / 10), 10 ** (-m[1] / 10),
                          10 ** (-m[2] / 10), m[3], m[4], 10 ** (-m[5] / 10), 10 ** (-m[6] / 10),
                          scheme.depth_tilt, scheme.tilt_bands, out)
    return out / scheme.delta


def _layers(key, policy_code, owner, scheme):
    grids = [chip_grid(PUBLIC_KEY, policy_code, owner, scheme)]
    if key is not None and not key.is_public:
        grids.append(chip_grid(key, policy_code, owner, scheme))
    return np.sum(grids, axis=0)


def watermark_block(y: np.ndarray, scale: float, sr: int, start: int, chips: np.ndarray,
                    depth: float, limit: float, scheme: Scheme = SCHEME) -> np.ndarray:
    """The watermark to add to every channel of a block, at the block's rate.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        Raw samples (integer or float); ``y * scale`` is in [-1, 1] units.
    start : int
        Index of ``y[0]`` in the whole signal; must be a multiple of
        :func:`audio.grid_unit` (sr)[0] so the block lies on the global 16 kHz grid.
    limit : float
        Largest magnitude the marked samples may reach (the limiter's ceiling).

    Returns
    -------
    np.ndarray [shape=(n,)], float32
        Already faded next to digital silence and lowered by the limiter.
    """
    native_unit, unit16 = audio.grid_unit(sr, scheme.sr)
    if start % native_unit:
        raise ValueError(f"block start {start} is not on the {native_unit}-sample grid")
    start16 = start // native_unit * unit16
    mono = np.empty(len(y), np.float32)
    min_run = max(1, int(_SILENCE_RUN * sr))
    _, peak, silent = _kernels.downmix(y, float(scale), min_run, mono)
    x16 = audio.resample(mono, sr, scheme.sr)
    w16 = watermark16(x16, start16, chips, depth, scheme)
    w = audio.resample(w16, scheme.sr, sr)
    n = len(y)
    w = w[:n] if len(w) >= n else np.concatenate([w, np.zeros(n - len(w), w.dtype)])
    gain = np.empty(n)
    if silent:
        _kernels.silence_ramp(y, min_run, int(_SILENCE_RAMP * sr), gain)
        w *= gain
    if len(w) and peak + max(float(w.max()), -float(w.min())) > limit:  # else nothing to limit
        _kernels.limit_gain(y, float(scale), w, limit, max(1, int(_LIMITER_RELEASE * sr)), gain)
        w *= gain
    return w


def embed_block(yf: np.ndarray, sr: int, start: int, chips: np.ndarray, depth: float,
                limit: float, scheme: Scheme = SCHEME) -> np.ndarray:
    """Marked copy of a float ``(n, channels)`` block whose first sample is ``start``.

    ``start`` must be a multiple of :func:`audio.grid_unit` (sr)[0] so the block
    lies on the global 16 kHz grid. Returns float64 ``(n, channels)``.
    """
    return yf + watermark_block(yf, 1.0, sr, start, chips, depth, limit, scheme)[:, None]


def embed(y, sr, *, policy=DEFAULT_POLICY, owner=0, key=None, strength=1.0,
          scheme: Scheme = SCHEME) -> np.ndarray:
    """Return a marked copy of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n, channels)]
        Integer or float samples at any rate from 8 kHz to 192 kHz.
    sr : int
        Sample rate of ``y``.
    policy : str
        One of :data:`nowm.POLICIES`; default ``"no-ai-training"``.
    owner : int
        Rightsholder id in ``0 .. 2**32 - 1`` (0 = unspecified).
    key : None, nowm.Key or path
        ``None`` embeds the public mark only. A private key embeds the public
        mark *and* a second layer that only this key detects.
    strength : float
        Multiplier of the tuned modulation depth, in (0, 4].

    Returns
    -------
    np.ndarray
        Same dtype, shape and rate as ``y``; never clipped (a limiter lowers the
        watermark near full scale); digital silence stays exactly silent.

    Raises
    ------
    ParameterError
        Bad audio, policy, owner, strength or key.
    TooShortError
        Audio shorter than :data:`MIN_EMBED_SECONDS`.

    Warns
    -----
    NowmWarning
        When the audio is shorter than :data:`OWNER_SECONDS`: the policy is
        embedded, but the owner id will not be recoverable.

    Examples
    --------
    >>> import numpy as np, nowm
    >>> sr = 16000
    >>> y = np.random.default_rng(0).normal(0, 0.1, 30 * sr).astype(np.float32)
    >>> marked = nowm.embed(y, sr, policy="no-ai-training", owner=42)
    >>> marked.dtype, marked.shape == y.shape
    (dtype('float32'), True)
    """
    y = audio.valid_audio(y, sr)
    sr = int(sr)
    pol = get_policy(policy)
    owner = check_owner(owner)
    depth = scheme.delta * check_strength(strength)
    key = resolve_key(key)
    duration = len(y) / sr
    if duration < MIN_EMBED_SECONDS:
        raise TooShortError(
            f"audio is {duration:.3f} s long; a mark needs at least {MIN_EMBED_SECONDS} s"
        )
    if duration < OWNER_SECONDS and owner:
        warnings.warn(
            f"audio is {duration:.1f} s long: the policy {pol.name!r} is embedded, but the "
            f"owner id needs about {OWNER_SECONDS:.0f} s of audio to be recovered",
            NowmWarning, stacklevel=2)
    chips = _layers(key, pol.code, owner, scheme)
    y2 = y.reshape(len(y), -1)
    if y.dtype.kind == "i":  # raw samples in, requantised in one pass (as embed_file does)
        fs = audio.full_scale(y.dtype)
        w = watermark_block(y2, 1.0 / fs, sr, 0, chips, depth, 1.0 - 1.0 / fs, scheme)
        out = np.empty_like(y2)
        _kernels.mix_out(y2, 1.0 / fs, w, 0, len(y2), float(fs), 1.0, out, np.zeros(2))
        return out.reshape(y.shape)
    if y.dtype.kind == "f":
        limit = max(1.0, float(y2.max()), -float(y2.min()))
        w = watermark_block(y2, 1.0, sr, 0, chips, depth, limit, scheme)
        return (y2 + w[:, None]).astype(y.dtype).reshape(y.shape)
    yf = audio.as_float2d(y)  # unsigned integers: centred first
    out = embed_block(yf, sr, 0, chips, depth, 1.0 - 1.0 / audio.full_scale(y.dtype), scheme)
    return audio.from_float2d(out, y)
