"""nowm: an inaudible, robust "not for AI training" mark for audio.

The public API is imported lazily, so ``import nowm.cli`` (and ``nowm --help``)
does not pay for numba and scipy.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "embed": "embedding", "NowmWarning": "embedding",
    "detect": "detection", "Detection": "detection", "DEFAULT_THRESHOLD": "detection",
    "embed_file": "files", "detect_file": "files", "EmbedReport": "files",
    "NowmError": "errors", "ParameterError": "errors", "AudioIOError": "errors",
    "AudioFormatError": "errors", "TooShortError": "errors", "KeyFileError": "errors",
    "OutputExistsError": "errors",
    "Key": "keys", "PUBLIC_KEY": "keys", "generate_key": "keys", "load_key": "keys",
    "save_key": "keys",
    "mark_catalog": "batch", "CatalogReport": "batch",
    "check": "ingest", "filter_allowed": "ingest", "Verdict": "ingest", "USES": "ingest",
    "scan": "ingest",
    "write_tags": "metadata", "read_tags": "metadata", "TagReport": "metadata",
    "TagFinding": "metadata",
    "POLICIES": "policy", "Policy": "policy", "get_policy": "policy", "DEFAULT_POLICY": "policy",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nowm' has no attribute {name!r}")


def __dir__():
    return __all__
