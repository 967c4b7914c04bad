"""Keys and keyed random streams.

A key is 32 random bytes. The built-in :data:`PUBLIC_KEY` needs no secret, so
anyone can detect the public "no-AI" mark. A rightsholder may create a private key
(:func:`generate_key`, ``nowm keygen``) for a second mark layer that only the key's
holder can detect.

Every pseudo-random pattern is drawn from its own stream, seeded from the key and
a purpose string (one stream per purpose, as audiowmark does), so patterns for
different purposes are independent.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import KeyFileError, OutputExistsError, ParameterError

__all__ = ["Key", "PUBLIC_KEY", "generate_key", "load_key", "save_key", "resolve_key"]

_KEY_FORMAT = "nowm-key"
_KEY_VERSION = 1


@dataclass(frozen=True)
class Key:
    """A watermark key.

    Attributes
    ----------
    secret : bytes
        32 bytes.
    name : str
        ``"public"`` for the built-in key, else a label (the key file's name).
    """

    secret: bytes
    name: str = "private"

    def __post_init__(self):
        if not isinstance(self.secret, bytes) or len(self.secret) != 32:
            raise ParameterError("a key secret must be exactly 32 bytes")

    @property
    def is_public(self) -> bool:
        return self.secret == PUBLIC_KEY.secret

    @property
    def fingerprint(self) -> str:
        """Short hex digest that identifies the key without revealing it."""
        return hashlib.blake2b(self.secret, digest_size=6, person=b"nowm-fpr").hexdigest()

    def rng(self, purpose: str) -> np.random.Generator:
        """Return a random generator seeded from this key and ``purpose``."""
        digest = hashlib.blake2b(
            purpose.encode(), key=self.secret, digest_size=32, person=b"nowm-rng"
        ).digest()
        return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))

    def __repr__(self):
        return f"Key(name={self.name!r}, fingerprint={self.fingerprint!r})"


#: The built-in public key: anyone can embed and detect with it.
PUBLIC_KEY = Key(hashlib.sha256(b"nowm public no-ai-training mark, version 1").digest(), "public")


def generate_key() -> Key:
    """Return a new random private key."""
    return Key(secrets.token_bytes(32), "private")


def save_key(key: Key, path, *, force: bool = False) -> Path:
    """Write ``key`` to ``path`` as a small JSON file readable only by its owner.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: key file exists; choose another name or pass --force")
    body = json.dumps(
        {"format": _KEY_FORMAT, "version": _KEY_VERSION, "secret": key.secret.hex(),
         "fingerprint": key.fingerprint},
        indent=1,
    )
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_key(path) -> Key:
    """Read a key file written by :func:`save_key`.

    Raises
    ------
    KeyFileError
        If the file is missing, unreadable or not a nowm key file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found; create one with `nowm keygen {path}`") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a directory, not a key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
        if data.get("format") != _KEY_FORMAT:
            raise ValueError("not a nowm key file")
        if data.get("version") != _KEY_VERSION:
            raise ValueError(f"unsupported key version {data.get('version')!r}")
        secret = bytes.fromhex(data["secret"])
        if len(secret) != 32:
            raise ValueError("secret must be 64 hex digits")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileError(
            f"{path}: malformed key file ({exc}); make a new one with `nowm keygen`"
        ) from None
    return Key(secret, path.stem)


def resolve_key(key) -> Key:
    """Accept ``None`` (public key), a :class:`Key`, or a key file path."""
    if key is None:
        return PUBLIC_KEY
    if isinstance(key, Key):
        return key
    if isinstance(key, (str, os.PathLike)):
        return load_key(key)
    raise ParameterError(f"key={key!r} must be None, a nowm.Key or a key file path")
