"""Error correction for the owner payload: a convolutional code with soft Viterbi.

Rate 1/3, constraint length 7, generators 133, 171, 165 (octal) as in LTE,
terminated with ``K - 1`` zero tail bits. Decoding takes soft values (positive
for bit 1), so every repetition of the pattern found in a clip adds evidence.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

__all__ = ["encode", "decode", "coded_length", "CONSTRAINT", "GENERATORS"]

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)


def _output_table() -> np.ndarray:
    """``table[state, input] -> coded bits`` with state = last K-1 inputs (newest in bit 0)."""
    n_states = 1 << (CONSTRAINT - 1)
    table = np.zeros((n_states, 2, len(GENERATORS)), np.int8)
    for state in range(n_states):
        for bit in (0, 1):
            reg = (state << 1) | bit  # K bits, newest input in bit 0
            for g, gen in enumerate(GENERATORS):
                # generator bit (K-1) taps the newest input, as in the usual octal notation
                taps = int(f"{gen:0{CONSTRAINT}b}"[::-1], 2)
                table[state, bit, g] = bin(reg & taps).count("1") & 1
    return table


_TABLE = _output_table()


def coded_length(n_bits: int) -> int:
    """Number of coded bits for ``n_bits`` payload bits."""
    return len(GENERATORS) * (n_bits + CONSTRAINT - 1)


def encode(bits) -> np.ndarray:
    """Encode payload bits (0/1) into coded bits (0/1)."""
    bits = np.asarray(bits, np.int8)
    padded = np.concatenate([bits, np.zeros(CONSTRAINT - 1, np.int8)])
    out = np.empty((len(padded), len(GENERATORS)), np.int8)
    state = 0
    mask = (1 << (CONSTRAINT - 1)) - 1
    for i, b in enumerate(padded):
        out[i] = _TABLE[state, b]
        state = ((state << 1) | int(b)) & mask
    return out.ravel()


def decode(soft, n_bits: int) -> np.ndarray:
    """Maximum-likelihood payload bits from soft coded values (positive means 1).

    Parameters
    ----------
    soft : np.ndarray [shape=(coded_length(n_bits),)]
    n_bits : int

    Returns
    -------
    np.ndarray [shape=(n_bits,)], int8
    """
    soft = np.ascontiguousarray(soft, np.float64)
    if soft.shape != (coded_length(n_bits),):
        raise ValueError(f"soft has shape {soft.shape}, expected ({coded_length(n_bits)},)")
    signs = _TABLE.astype(np.float64) * 2.0 - 1.0
    out = np.empty(n_bits + CONSTRAINT - 1, np.int8)
    _kernels.viterbi(soft.reshape(-1, len(GENERATORS)), signs, CONSTRAINT - 1, out)
    return out[:n_bits]
