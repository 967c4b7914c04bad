"""Audio layout, validation and resampling: the only place where they happen.

Arrays are ``(n,)`` mono or ``(n, channels)``, the layout of soundfile. Integer
samples are full-scale integers; float samples are nominally in [-1, 1].
"""

from __future__ import annotations

from math import gcd

import numpy as np

from .errors import ParameterError

__all__ = [
    "MIN_SR", "MAX_SR", "valid_audio", "as_float2d", "from_float2d", "to_mono",
    "resample", "full_scale", "grid_unit",
]

MIN_SR = 8000
MAX_SR = 192000
_INT_KINDS = "iu"


def valid_audio(y, sr, *, name: str = "y") -> np.ndarray:
    """Check ``y`` and ``sr`` once at the public boundary; return ``y`` as an array.

    Raises
    ------
    ParameterError
        On a bad rate, shape, dtype, empty audio or non-finite samples.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) and not (
        isinstance(sr, float) and float(sr).is_integer()
    ):
        raise ParameterError(f"sr={sr!r} must be an integer sample rate in Hz")
    sr = int(sr)
    if not MIN_SR <= sr <= MAX_SR:
        raise ParameterError(f"sr={sr} is outside the supported range {MIN_SR}..{MAX_SR} Hz")
    y = np.asarray(y)
    if y.dtype.kind not in _INT_KINDS + "f":
        raise ParameterError(f"{name} has dtype {y.dtype}; expected integer or floating-point samples")
    if y.ndim not in (1, 2):
        raise ParameterError(f"{name} has shape {y.shape}; expected (n,) or (n, channels)")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ParameterError(f"{name} has shape {y.shape}: no channels")
    if y.shape[0] == 0:
        raise ParameterError(f"{name} is empty (zero-length audio)")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise ParameterError(f"{name} has {bad} NaN or infinite samples; clean the audio first")
    return y


def full_scale(dtype) -> float:
    """Full-scale magnitude of an integer dtype (1.0 for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind in _INT_KINDS:
        return float(-np.iinfo(dtype).min) if dtype.kind == "i" else float(np.iinfo(dtype).max + 1) / 2
    return 1.0


def as_float2d(y) -> np.ndarray:
    """``(n, channels)`` float64 copy in [-1, 1] units."""
    y = np.asarray(y)
    out = y.astype(np.float64)
    if y.dtype.kind == "u":
        out -= full_scale(y.dtype)
    if y.dtype.kind in _INT_KINDS:
        out /= full_scale(y.dtype)
    return out.reshape(len(y), -1)


def from_float2d(yf: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Convert ``(n, channels)`` float64 back to the dtype and shape of ``like``."""
    like = np.asarray(like)
    dtype = like.dtype
    if dtype.kind in _INT_KINDS:
        info = np.iinfo(dtype)
        v = yf * full_scale(dtype)
        if dtype.kind == "u":
            v += full_scale(dtype)
        out = np.clip(np.rint(v), info.min, info.max).astype(dtype)
    else:
        out = yf.astype(dtype)
    return out.reshape(like.shape)


def to_mono(yf: np.ndarray) -> np.ndarray:
    """Downmix ``(n, channels)`` to ``(n,)`` float64 by averaging channels."""
    if yf.shape[1] == 1:
        return yf[:, 0].astype(np.float64)
    from . import _kernels  # numpy's mean over a short axis is 10x slower

    out = np.empty(len(yf))
    _kernels.downmix(yf, 1.0, 0, out)
    return out


def grid_unit(sr: int, target: int = 16000):
    """Smallest ``(native, target)`` sample counts that span the same time."""
    g = gcd(int(sr), int(target))
    return sr // g, target // g


def resample(x: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample a 1-D or (n, channels) signal with soxr; identity when rates match.

    float32 stays float32 (soxr is faster on it); anything else becomes float64.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = np.asarray(x, np.float64)
    if sr_in == sr_out:
        return x
    import soxr

    return soxr.resample(x, sr_in, sr_out, quality=quality)
