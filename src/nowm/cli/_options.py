"""Options shared by several commands, each defined once."""

from __future__ import annotations

import argparse

from ..policy import DEFAULT_POLICY, POLICIES


def owner_id(text: str) -> int:
    """Parse a decimal or ``0x`` hex rightsholder id below 2**32."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal or 0x-hex integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} is out of range: an owner id is 0..{2**32 - 1}")
    return value


def count(minimum: int, hint: str = ""):
    """An argparse type for an integer of at least ``minimum`` (``hint`` says what it means)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}{hint}")
        return value

    return parse


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be a probability in (0, 1), e.g. 1e-6")
    return value


def add_policy(p):
    p.add_argument("--policy", default=DEFAULT_POLICY, choices=list(POLICIES),
                   help=f"reservation to embed (default {DEFAULT_POLICY})")


def add_owner(p):
    p.add_argument("--owner", type=owner_id, default=0, metavar="ID",
                   help="rightsholder id, decimal or 0x hex, below 2**32 (default 0: unspecified)")


def add_key(p, verb):
    p.add_argument("--key", metavar="KEYFILE",
                   help=f"private key file (from `nowm keygen`) to {verb} a private layer")
