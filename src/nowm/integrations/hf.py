"""Hugging Face ``datasets``: keep the rows whose audio may be used.

Works on undecoded audio (``Audio(decode=False)``: ``{"bytes", "path"}`` rows, the
fast path: metadata is still there and nothing is decoded twice), on decoded rows
(``{"array", "sampling_rate"}`` dicts, or torchcodec ``AudioDecoder`` objects of
``datasets`` 4 and later), on plain path strings, one example or a batch at a time.

Examples
--------
>>> from datasets import load_dataset, Audio                      # doctest: +SKIP
>>> from nowm.integrations.hf import allowed
>>> ds = ds.cast_column("audio", Audio(decode=False))
>>> ds = ds.filter(allowed("audio", use="genai-training"), num_proc=8)
>>> ds = ds.map(verdicts("audio"), num_proc=8)   # or keep every row, with the verdict
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..ingest import Verdict, check, check_use, warm

__all__ = ["allowed", "verdicts", "AllowedFilter", "VerdictColumns", "check_value"]


def check_value(value, **check_kwargs) -> Verdict:
    """The verdict on one audio cell of a dataset row."""
    if value is None:
        return Verdict("<none>", check_kwargs.get("use", "ai-training"), False, "unreadable",
                       "the audio cell is empty (None)", error="the audio cell is empty (None)")
    if isinstance(value, dict):
        if value.get("array") is not None:
            sr = value.get("sampling_rate")
            if sr is None:
                raise ParameterError("a decoded audio cell needs 'sampling_rate' with its 'array'")
            return check((np.asarray(value["array"]), int(sr)), name=value.get("path"),
                         **check_kwargs)
        if value.get("bytes") is not None:
            return check(value["bytes"], name=value.get("path") or "<bytes>", **check_kwargs)
        if value.get("path"):
            return check(value["path"], **check_kwargs)
        return check_value(None, **check_kwargs)
    if isinstance(value, (str, bytes, bytearray)):
        return check(value, **check_kwargs)
    if hasattr(value, "get_all_samples"):  # torchcodec AudioDecoder (datasets >= 4)
        samples = value.get_all_samples()
        y = samples.data.cpu().numpy()  # (channels, n)
        return check((y.T, int(samples.sample_rate)), name="<decoded>", **check_kwargs)
    raise ParameterError(
        f"an audio cell of type {type(value).__name__} is not supported; use Audio(decode=False), "
        "a decoded {'array', 'sampling_rate'} dict, a path or bytes")


class AllowedFilter:
    """Picklable predicate for ``Dataset.filter`` (also with ``batched=True`` and
    ``num_proc``): True for rows whose ``column`` may be used for ``use``."""

    def __init__(self, column: str = "audio", **check_kwargs):
        check_use(check_kwargs.get("use", "ai-training"))
        warm()  # compiled once here: worker processes forked later inherit it
        self.column = column
        self.check_kwargs = check_kwargs

    def _cell(self, example):
        try:
            return example[self.column]
        except KeyError:
            raise ParameterError(f"the rows have no column {self.column!r}; pass the audio "
                                 f"column's name, e.g. allowed('audio')") from None

    def __call__(self, example):
        value = self._cell(example)
        if isinstance(value, list):  # batched=True: one list per column
            return [check_value(v, **self.check_kwargs).allowed for v in value]
        return check_value(value, **self.check_kwargs).allowed


class VerdictColumns(AllowedFilter):
    """For ``Dataset.map``: adds ``nowm_allowed``, ``nowm_status``, ``nowm_reason``,
    ``nowm_policy``, ``nowm_owner`` and ``nowm_false_alarm`` to every row."""

    def __call__(self, example):
        value = self._cell(example)
        if isinstance(value, list):
            cols = [_columns(check_value(v, **self.check_kwargs)) for v in value]
            return {k: [c[k] for c in cols] for k in cols[0]} if cols else {}
        return _columns(check_value(value, **self.check_kwargs))


def _columns(v: Verdict) -> dict:
    d = v.to_dict()
    fa = d["false_alarm"]
    return {"nowm_allowed": d["allowed"], "nowm_status": d["status"], "nowm_reason": d["reason"],
            "nowm_policy": d["policy"], "nowm_owner": d["owner"],
            "nowm_false_alarm": float("nan") if fa is None else fa}


def allowed(column: str = "audio", **check_kwargs) -> AllowedFilter:
    """A ``Dataset.filter`` function keeping rows whose audio may be used.

    Parameters
    ----------
    column : str
        The audio column.
    **check_kwargs
        As for :func:`nowm.check` (``use``, ``consent``, ``key``, ``tags``...).
    """
    return AllowedFilter(column, **check_kwargs)


def verdicts(column: str = "audio", **check_kwargs) -> VerdictColumns:
    """A ``Dataset.map`` function adding the verdict as ``nowm_*`` columns."""
    return VerdictColumns(column, **check_kwargs)
