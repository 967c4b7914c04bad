"""Short-time Fourier transforms on the scheme's global frame grid.

Frame ``t`` is centred on sample ``t * hop`` of the whole signal, counted from its
first sample, so blocks of a long file share one grid.

FFTs go through scipy.fft, except for short inputs (a clip of up to about 30 s),
which use numpy.fft: importing scipy.fft costs about 0.2 s, most of the start-up
budget of ``nowm detect`` on one clip, and on a clip's few hundred frames the
difference in speed is a millisecond. Both are pocketfft. Single precision
(the embedder's choice: its watermark sits 30 dB under the host, far above
float32's rounding) always goes through scipy.fft, about twice as fast as double.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_range", "windowed_frames", "overlap_add", "sqrt_hann", "hann",
           "rfft", "irfft"]


def hann(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann


def sqrt_hann(n_fft: int) -> np.ndarray:
    """Analysis/synthesis window pair for 50 % overlap with perfect reconstruction."""
    return np.sqrt(hann(n_fft))


def frame_range(start: int, length: int, n_fft: int, hop: int):
    """First and one-past-last frame whose window touches samples [start, start+length)."""
    half = n_fft // 2
    first = -((-(start - half + 1)) // hop)  # ceil((start - half + 1) / hop)
    last = (start + length - 1 + half) // hop
    return first, last + 1


def windowed_frames(x: np.ndarray, start: int, t0: int, t1: int, n_fft: int, hop: int,
                    window: np.ndarray) -> np.ndarray:
    """Frames ``t0..t1-1`` of ``x`` (first sample at global index ``start``) times
    ``window``, in the window's dtype; samples outside ``x`` are zeros."""
    from . import _kernels

    out = np.empty((t1 - t0, n_fft), window.dtype)
    _kernels.frames_windowed(x, t0 * hop - n_fft // 2 - start, hop, window, out)
    return out


def overlap_add(fr: np.ndarray, start: int, t0: int, length: int, hop: int,
                window: np.ndarray) -> np.ndarray:
    """Overlap-add frames (first frame ``t0``) times ``window`` into a signal of
    ``length`` samples whose first sample has global index ``start``."""
    from . import _kernels

    out = np.empty(length, fr.dtype)
    _kernels.overlap_add(fr, t0 * hop - fr.shape[1] // 2 - start, hop, window, out)
    return out


#: Frame count from which scipy.fft is used (about 33 s at 16 kHz, hop 256).
SCIPY_FRAMES = 2048


def rfft(fr: np.ndarray) -> np.ndarray:
    """Real FFT along the last axis; single precision in, single precision out
    (always through scipy.fft: numpy's float32 rfft is about 5x slower)."""
    if len(fr) < SCIPY_FRAMES and fr.dtype != np.float32:
        return np.fft.rfft(fr, axis=-1)
    import scipy.fft

    return scipy.fft.rfft(fr, axis=-1, workers=1)


def irfft(spec: np.ndarray, n_fft: int) -> np.ndarray:
    if len(spec) < SCIPY_FRAMES and spec.dtype != np.complex64:
        return np.fft.irfft(spec, n=n_fft, axis=-1)
    import scipy.fft

    return scipy.fft.irfft(spec, n=n_fft, axis=-1, workers=1)
