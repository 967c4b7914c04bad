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


#: The ``uuid`` box of a C2PA manifest store in ISO base media files.
C2PA_UUID = bytes.fromhex("D8FEC3D61B0E483C92975828877EC481")
C2PA_MIMES = ("application/c2pa", "application/x-c2pa-manifest-store")


def present(fileobj, container: str, size: int) -> bool:
    """True when ``fileobj`` embeds a C2PA manifest store where C2PA puts one for this
    container (a RIFF ``C2PA`` chunk, an ID3 ``GEOB`` frame, an MP4 ``uuid`` box).
    Needs no c2pa-python."""
    from . import containers, riff

    try:
        if container == "wav":
            return any(c.cid == b"C2PA" for c in riff.parse(fileobj, size).chunks)
        if container in ("mp3", "flac", "id3"):
            fileobj.seek(0)
            if containers.id3_size(fileobj.read(10)) is None:
                return False
            from mutagen.id3 import ID3

            fileobj.seek(0)
            return any(f.mime in C2PA_MIMES for f in ID3(fileobj).getall("GEOB"))
        if container == "mp4":
            for off, n in containers._top_boxes(fileobj, size):
                fileobj.seek(off + 4)
                if fileobj.read(4) == b"uuid" and fileobj.read(16) == C2PA_UUID:
                    return True
    except Exception:  # unreadable metadata: the readers report it
        return False
    return False


def read(fileobj, container: str, report, size: int) -> None:
    """Read a C2PA manifest embedded in ``fileobj`` when c2pa-python is installed."""
    mime = _MIME.get(container)
    if mime is None or not present(fileobj, container, size):
        return  # the usual case: no manifest, and no need to load c2pa
    try:
        import c2pa
    except ImportError:
        report.skip("C2PA manifest present but not read: install c2pa-python to read its "
                    "training-mining assertion")
        return
    fileobj.seek(0)
    try:
        with c2pa.Reader(mime, fileobj) as reader:
            text = reader.json()
    except Exception as exc:  # a manifest c2pa cannot read
        report.skip(f"C2PA manifest unreadable ({type(exc).__name__}: {V.clip(str(exc))}); ignored")
        return
    findings_from_store(text, report)
