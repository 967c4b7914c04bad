"""The owner payload: a 32-bit rightsholder id and a CRC that also covers the policy.

The policy travels in the choice of sync pattern, so it costs no payload bits;
the checksum is computed over the policy code and the id together, so a payload
decoded under the wrong policy, or decoded wrongly, fails the check. With a
16-bit CRC a failed decode passes by chance with probability 2**-16 (1.5e-5),
and the detector makes at most two decoding attempts per file.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "unpack", "crc", "CRC_BITS", "OWNER_BITS"]

OWNER_BITS = 32
CRC_BITS = 16
_CRC16_POLY = 0x1021  # CRC-16/CCITT-FALSE (CRC-16/IBM-3740)
_CRC16_INIT = 0xFFFF


def crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value for b"123456789": 0x29B1)."""
    value = _CRC16_INIT
    for byte in data:
        value ^= byte << 8
        for _ in range(8):
            value <<= 1
            if value & 0x10000:
                value ^= _CRC16_POLY
    return value & 0xFFFF


def _check(policy_code: int, owner: int) -> int:
    return crc(bytes([policy_code]) + int(owner).to_bytes(4, "big"))


def pack(policy_code: int, owner: int) -> np.ndarray:
    """Return the 48 payload bits (MSB first): owner id, then CRC over (policy, owner)."""
    raw = int(owner).to_bytes(4, "big") + _check(policy_code, owner).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(raw, np.uint8)).astype(np.int8)


def unpack(bits, policy_code: int):
    """Return the owner id if the checksum holds for ``policy_code``, else ``None``."""
    raw = np.packbits(np.asarray(bits, np.uint8)).tobytes()
    owner, check = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:6], "big")
    if _check(policy_code, owner) != check:
        return None
    return owner
