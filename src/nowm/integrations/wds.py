"""webdataset: drop reserved samples before decoding, on the raw bytes.

Run the predicate before ``.decode()``: the audio is still the file's own bytes, so
its metadata is read too and nothing is decoded twice.

Examples
--------
>>> import webdataset as wds                                        # doctest: +SKIP
>>> from nowm.integrations.wds import allowed
>>> ds = wds.WebDataset(urls).select(allowed(use="genai-training")).decode()
>>> # or as a stage of a pipeline
>>> pipe = wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(),
...                         wds.select(allowed()), wds.decode())
"""

from __future__ import annotations

import os

from ..errors import ParameterError
from ..ingest import AUDIO_EXTENSIONS, check, check_use, warm

__all__ = ["allowed", "AllowedSample", "audio_keys", "sample_verdicts"]


def audio_keys(sample: dict) -> list:
    """The keys of a webdataset sample that hold audio files (``flac``, ``mic1.wav``...)."""
    return [k for k in sample if not k.startswith("__")
            and os.path.splitext("x." + k)[1].lower() in AUDIO_EXTENSIONS]


def sample_verdicts(sample: dict, **check_kwargs) -> dict:
    """``{key: Verdict}`` for every audio file of a sample."""
    out = {}
    where = sample.get("__url__")
    for k in audio_keys(sample):
        value = sample[k]
        name = f"{where}::{sample.get('__key__')}.{k}" if where else f"{sample.get('__key__')}.{k}"
        if isinstance(value, (bytes, bytearray, memoryview)):
            out[k] = check(bytes(value), name=name, **check_kwargs)
        elif isinstance(value, tuple) and len(value) == 2:  # decoded (array, sr)
            y, sr = value
            y = y.numpy() if hasattr(y, "numpy") else y
            if getattr(y, "ndim", 1) == 2 and y.shape[0] < y.shape[1]:
                y = y.T  # torchaudio's (channels, n)
            out[k] = check((y, int(sr)), name=name, **check_kwargs)
        else:
            raise ParameterError(
                f"sample {sample.get('__key__')!r}: {k!r} is a {type(value).__name__}, not the file's "
                "bytes; put nowm's select before .decode()")
    return out


class AllowedSample:
    """Picklable predicate for ``WebDataset.select`` / ``wds.select``: True when
    every audio file of the sample may be used (samples without audio pass)."""

    def __init__(self, on_reject=None, **check_kwargs):
        check_use(check_kwargs.get("use", "ai-training"))
        warm()  # compiled once here: worker processes forked later inherit it
        self.on_reject = on_reject
        self.check_kwargs = check_kwargs

    def __call__(self, sample: dict) -> bool:
        verdicts = sample_verdicts(sample, **self.check_kwargs)
        ok = all(v.allowed for v in verdicts.values())
        if not ok and self.on_reject is not None:
            self.on_reject(sample, [v for v in verdicts.values() if not v.allowed])
        return ok


def allowed(*, on_reject=None, **check_kwargs) -> AllowedSample:
    """A predicate keeping the samples whose audio may be used.

    Parameters
    ----------
    on_reject : callable, optional
        ``on_reject(sample, [Verdict, ...])`` for every sample dropped.
    **check_kwargs
        As for :func:`nowm.check` (``use``, ``consent``, ``key``, ``tags``...).
    """
    return AllowedSample(on_reject=on_reject, **check_kwargs)

