"""The owner payload's error-correcting code (nowm.ecc) and checksum (nowm.payload)."""

import numpy as np
import pytest

from nowm import ecc, payload

N_BITS = 48


def test_round_trip_without_noise(rng):
    for _ in range(20):
        bits = rng.integers(0, 2, N_BITS).astype(np.int8)
        coded = ecc.encode(bits)
        assert coded.shape == (ecc.coded_length(N_BITS),) == (192,)
        assert np.array_equal(ecc.decode(coded * 2.0 - 1.0, N_BITS), bits)


def test_code_is_linear_and_tail_biting(rng):
    """A tail-biting convolutional code is linear, and rotating the input by one bit
    rotates the output by one step: there is no start or end to the codeword."""
    a = rng.integers(0, 2, N_BITS).astype(np.int8)
    b = rng.integers(0, 2, N_BITS).astype(np.int8)
    assert np.array_equal(ecc.encode(a ^ b), ecc.encode(a) ^ ecc.encode(b))
    n_out = len(ecc.GENERATORS)
    assert np.array_equal(ecc.encode(np.roll(a, 1)), np.roll(ecc.encode(a), n_out))
    assert not ecc.encode(np.zeros(N_BITS, np.int8)).any()


def test_weight_of_a_single_one_is_the_free_distance_bound():
    """One payload bit set gives the codeword weight of the generators' taps together:
    24 for the cdma2000 rate-1/4, K = 9 code, its free distance."""
    bits = np.zeros(N_BITS, np.int8)
    bits[10] = 1
    assert int(ecc.encode(bits).sum()) == 24


def test_corrects_errors_at_low_signal(rng):
    """At the repetition the detector sees (736 data tiles per period) and a total
    data energy of 150 (a clean 10 s clip reaches about 85, a 20 s clip about 170),
    nearly every frame decodes: benchmarks/payload_code.py measured 1.1 % wrong
    frames at 140 and 0.1 % at 160 (3,000 frames each)."""
    n_coded = ecc.coded_length(N_BITS)
    reps = np.bincount(np.arange(736) % n_coded, minlength=n_coded).astype(float)
    a = np.sqrt(150.0 / 736)
    wrong = 0
    for _ in range(100):
        bits = rng.integers(0, 2, N_BITS).astype(np.int8)
        y = reps * a * (ecc.encode(bits) * 2.0 - 1.0) + np.sqrt(reps) * rng.normal(size=n_coded)
        wrong += not np.array_equal(ecc.decode(y, N_BITS), bits)
    assert wrong <= 5
    # and hard decisions alone, before decoding, are far from error free
    y = reps * a * (ecc.encode(bits) * 2.0 - 1.0) + np.sqrt(reps) * rng.normal(size=n_coded)
    assert np.mean((y > 0) != ecc.encode(bits).astype(bool)) > 0.05


def test_payload_checksum_covers_policy_and_owner():
    bits = payload.pack(2, 0xDEADBEEF)
    assert len(bits) == N_BITS == payload.OWNER_BITS + payload.CRC_BITS
    assert payload.unpack(bits, 2) == 0xDEADBEEF
    assert payload.unpack(bits, 3) is None  # decoded under another policy: rejected
    flipped = bits.copy()
    flipped[5] ^= 1
    assert payload.unpack(flipped, 2) is None
    assert payload.crc(b"123456789") == 0x29B1


def test_decode_checks_its_input_length():
    with pytest.raises(ValueError, match="expected"):
        ecc.decode(np.zeros(162), N_BITS)
    with pytest.raises(ValueError, match="at least"):
        ecc.encode(np.zeros(4, np.int8))
