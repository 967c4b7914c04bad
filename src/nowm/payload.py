"""The owner payload: policy code, 32-bit rightsholder id and a CRC-24, as bits."""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "unpack", "crc24"]

_CRC24_POLY = 0x864CFB  # CRC-24/OpenPGP (RFC 4880)
_CRC24_INIT = 0xB704CE


def crc24(data: bytes) -> int:
    """CRC-24/OpenPGP of ``data``."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def _body(policy_code: int, owner: int) -> bytes:
    return bytes([policy_code]) + int(owner).to_bytes(4, "big")


def pack(policy_code: int, owner: int) -> np.ndarray:
    """Return the 64 payload bits (MSB first): policy code, owner, CRC-24."""
    body = _body(policy_code, owner)
    raw = body + crc24(body).to_bytes(3, "big")
    return np.unpackbits(np.frombuffer(raw, np.uint8)).astype(np.int8)


def unpack(bits):
    """Return ``(policy_code, owner)`` if the checksum holds, else ``None``."""
    raw = np.packbits(np.asarray(bits, np.uint8)).tobytes()
    body, check = raw[:5], int.from_bytes(raw[5:8], "big")
    if crc24(body) != check:
        return None
    return body[0], int.from_bytes(body[1:5], "big")
