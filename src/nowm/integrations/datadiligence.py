"""A datadiligence-style ``is_allowed`` for audio, and a datadiligence evaluator.

``datadiligence`` (Spawning) checks opt-outs of web content before training: HTTP
headers, TDMRep, C2PA. This module adds the nowm watermark and audio metadata to
it. :func:`is_allowed` works without the package; :class:`NowmRule` and
:class:`NowmEvaluator` need it (``pip install 'nowm[datadiligence]'``).

Examples
--------
>>> import datadiligence as dd                                      # doctest: +SKIP
>>> from nowm.integrations.datadiligence import register
>>> register(use="genai-training")      # adds the "nowm" evaluator
>>> dd.is_allowed(name="nowm", path="clip.mp3")
>>> dd.get_evaluator("nowm").filter_allowed(paths=["a.wav", "b.flac"])
"""

from __future__ import annotations

from ..ingest import check, check_use

__all__ = ["is_allowed", "filter_allowed", "NowmRule", "NowmEvaluator", "register"]


def is_allowed(path=None, body=None, *, use: str = "ai-training", **check_kwargs) -> bool:
    """datadiligence's calling convention: ``path=`` a file, or ``body=`` its bytes.

    True when the audio may be used for ``use`` (see :func:`nowm.check`).
    """
    if (path is None) == (body is None):
        from ..errors import ParameterError

        raise ParameterError("give exactly one of path= and body=")
    return check(path if path is not None else body, use=use, **check_kwargs).allowed


def filter_allowed(paths=None, bodies=None, *, use: str = "ai-training", **check_kwargs) -> list:
    """The allowed entries of ``paths`` (or ``bodies``), in order."""
    items = paths if paths is not None else bodies or []
    return [x for x in items if check(x, use=use, **check_kwargs).allowed]


try:
    from datadiligence import Evaluator as _Evaluator
    from datadiligence.rules import Rule as _Rule
except ImportError:  # the functions above still work
    _Evaluator = _Rule = object


class NowmRule(_Rule):
    """A datadiligence rule: the nowm watermark and audio reservation metadata."""

    def __init__(self, use: str = "ai-training", **check_kwargs):
        if _Rule is object:
            raise ImportError("NowmRule needs datadiligence: pip install 'nowm[datadiligence]'")
        super().__init__()
        self.use = check_use(use)
        self.check_kwargs = check_kwargs

    def is_ready(self) -> bool:
        return True

    def is_allowed(self, path=None, body=None, **kwargs) -> bool:
        if path is None and body is None:
            return True  # nothing this rule can look at (e.g. only headers): no opinion
        return is_allowed(path=path, body=body, use=self.use, **self.check_kwargs)


class NowmEvaluator(_Evaluator):
    """A datadiligence evaluator named ``nowm`` holding a :class:`NowmRule`."""

    name = "nowm"

    def __init__(self, use: str = "ai-training", **check_kwargs):
        if _Evaluator is object:
            raise ImportError("NowmEvaluator needs datadiligence: pip install 'nowm[datadiligence]'")
        super().__init__()
        self.add_rule(NowmRule(use, **check_kwargs))

    def filter_allowed(self, paths=None, bodies=None, **kwargs) -> list:
        items = paths if paths is not None else bodies or []
        key = "path" if paths is not None else "body"
        return [x for x in items if self.is_allowed(**{key: x})]


def register(use: str = "ai-training", *, overwrite: bool = True, **check_kwargs) -> NowmEvaluator:
    """Register a :class:`NowmEvaluator` with datadiligence under the name ``nowm``."""
    import datadiligence as dd

    ev = NowmEvaluator(use, **check_kwargs)
    dd.register_evaluator(ev, name="nowm", overwrite=overwrite)
    return ev
