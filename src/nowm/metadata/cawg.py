"""C2PA manifests: the CAWG training-and-data-mining assertion.

Reading a manifest needs the optional ``c2pa-python`` package; without it, files are read
as if they had no manifest. :func:`findings_from_store` works on the manifest-store JSON
that ``c2pa.Reader.json()`` returns, so it is usable (and tested) on its own.
"""

from __future__ import annotations

import json

from . import _vocab as V

_LABELS = ("cawg.training-mining", "c2pa.training-mining")
_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "mp4": "audio/mp4"}
_RESTRICTING = ("notAllowed", "constrained")


def policy_of_entries(entries: dict):
    """nowm policy of a training-mining ``entries`` map (``constrained`` counts as
    ``notAllowed``, as the CAWG specification says), or None when it has no known entry."""
    uses = {}
    for key, entry in entries.items():
        name = str(key).split(".", 1)[-1]
        if name in ("ai_training", "ai_generative_training", "ai_inference", "data_mining"):
            use = entry.get("use") if isinstance(entry, dict) else entry
            uses[name] = str(use)
    if not uses:
        return None
    restricted = {k for k, u in uses.items() if u in _RESTRICTING}
    if not restricted:
        return "ai-allowed" if all(u == "allowed" for u in uses.values()) else None
    all_constrained = all(uses[k] == "constrained" for k in restricted)
    if restricted & {"data_mining", "ai_inference"} or len(restricted) == 4:
        return "consent-required" if all_constrained else "no-tdm"
    if all_constrained and restricted >= {"ai_training", "ai_generative_training"}:
        return "consent-required"
    if "ai_training" in restricted:
        return "no-ai-training"
    return "no-genai-training"


def findings_from_store(store, report, source: str = "C2PA manifest") -> None:
    """Add the training-mining assertions of a manifest store (dict or JSON text)."""
    try:
        if isinstance(store, (str, bytes)):
            store = json.loads(store)
        manifests = store.get("manifests")
        manifests = {} if manifests is None else manifests
        if not isinstance(manifests, dict):
            raise TypeError("manifests is not a map")
        active = store.get("active_manifest")
        chosen = {active: manifests[active]} if active in manifests else manifests
        for label, manifest in chosen.items():
            for assertion in manifest.get("assertions") or []:
                name = str(assertion.get("label", ""))
                if not name.startswith(_LABELS):
                    continue
                data = assertion.get("data") or {}
                entries = data.get("entries", data) if isinstance(data, dict) else {}
                if not isinstance(entries, dict):
                    report.skip(f"{source}: {name} has no entries map; ignored")
                    continue
                value = ", ".join(
                    f"{k}={(e.get('use') if isinstance(e, dict) else e)}" for k, e in entries.items())
                report.add("c2pa-cawg", name, value, policy_of_entries(entries), f"{source} {label}")
        status = store.get("validation_status") or []
        if status:
            codes = ", ".join(str(s.get("code", s)) if isinstance(s, dict) else str(s) for s in status)
            report.skip(f"{source}: validation reported {V.clip(codes)}; its claims are unverified")
    except (AttributeError, TypeError, ValueError) as exc:
        report.skip(f"{source}: manifest store not understood ({type(exc).__name__}); ignored")


def read(fileobj, container: str, report) -> None:
    """Read a C2PA manifest embedded in ``fileobj`` when c2pa-python is installed."""
    mime = _MIME.get(container)
    if mime is None:
        return
    try:
        import c2pa
    except ImportError:
        return
    fileobj.seek(0)
    try:
        with c2pa.Reader(mime, fileobj) as reader:
            text = reader.json()
    except Exception as exc:  # no manifest (the usual case) or one c2pa cannot read
        msg = str(exc)
        quiet = ("ManifestNotFound", "JUMBF", "could not be parsed", "NotSupported")
        if not any(q in type(exc).__name__ + msg for q in quiet):
            report.skip(f"C2PA manifest unreadable ({type(exc).__name__}: {V.clip(msg)})")
        return
    findings_from_store(text, report)
