"""lhotse: a ``CutSet.filter`` predicate that checks each cut's own segment.

The watermark is searched in the audio of the cut itself (``cut.load_audio()``:
only its segment is read), and the reservation metadata of the file(s) the cut
comes from is read once per file and applies to every cut of it.

Examples
--------
>>> from lhotse import CutSet                                       # doctest: +SKIP
>>> from nowm.integrations.lhotse import allowed
>>> cuts = CutSet.from_file("cuts.jsonl.gz").filter(allowed(use="ai-training"))
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..ingest import Verdict, check, check_use, warm

__all__ = ["allowed", "CutFilter"]

_TAG_CACHE = 4096


class CutFilter:
    """Picklable predicate: True when the cut may be used for ``use``.

    :meth:`verdict` returns the full :class:`nowm.Verdict`.
    """

    def __init__(self, *, on_reject=None, **check_kwargs):
        check_use(check_kwargs.get("use", "ai-training"))
        warm()  # compiled once here: worker processes forked later inherit it
        self.tags = check_kwargs.pop("tags", True)
        self.on_reject = on_reject
        self.check_kwargs = check_kwargs
        self._tags = OrderedDict()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tags"] = OrderedDict()
        return state

    def verdict(self, cut) -> Verdict:
        md = self._metadata(cut) if self.tags else None
        try:
            y = np.asarray(cut.load_audio())  # (channels, n) of the cut's segment only
        except Exception as exc:  # lhotse raises many kinds for a missing or broken source
            msg = f"{cut.id}: cannot load the cut's audio ({type(exc).__name__}: {exc})"
            return _decide_unreadable(cut.id, md, msg, self.check_kwargs)
        y = y.T if y.ndim == 2 else y
        return check((y, int(cut.sampling_rate)), name=cut.id, metadata=md, tags=False,
                     **self.check_kwargs)

    def __call__(self, cut) -> bool:
        v = self.verdict(cut)
        if not v.allowed and self.on_reject is not None:
            self.on_reject(cut, v)
        return v.allowed

    def _metadata(self, cut):
        """The tags of every file source behind the cut, merged (cached per file)."""
        from ..metadata import TagReport

        report = TagReport()
        for rec in _recordings(cut):
            for src in getattr(rec, "sources", None) or []:
                kind, where = getattr(src, "type", None), getattr(src, "source", None)
                if kind not in ("file", "memory") or where is None:
                    continue
                ck = where if kind == "file" else id(where)
                if ck not in self._tags:
                    self._tags[ck] = _read(where)
                    if len(self._tags) > _TAG_CACHE:
                        self._tags.popitem(last=False)
                found = self._tags[ck]
                if found is not None:
                    report.findings.extend(found.findings)
                    report.skipped.extend(found.skipped)
        return report


def _decide_unreadable(name, md, msg, check_kwargs):
    """Metadata still reserves a cut whose audio cannot be loaded."""
    from ..ingest import _decide

    return _decide(name, check_kwargs.get("use", "ai-training"), check_kwargs.get("consent", False),
                   {}, md, None, msg, True, 0.0, False)


def _read(where):
    from ..metadata import read_tags

    try:
        return read_tags(where)
    except Exception:  # a missing file shows up when the audio is loaded
        return None


def _recordings(cut):
    rec = getattr(cut, "recording", None)
    if rec is not None:
        return [rec]
    out = []
    for track in getattr(cut, "tracks", None) or []:  # MixedCut
        out.extend(_recordings(track.cut))
    return out


def allowed(*, on_reject=None, **check_kwargs) -> CutFilter:
    """A ``CutSet.filter`` predicate keeping the cuts whose audio may be used.

    Parameters
    ----------
    on_reject : callable, optional
        ``on_reject(cut, verdict)`` for every cut dropped.
    **check_kwargs
        As for :func:`nowm.check` (``use``, ``consent``, ``key``, ``tags``...).
    """
    return CutFilter(on_reject=on_reject, **check_kwargs)
