"""Ingest: one verdict per audio item for dataset builders (DESIGN section 7).

:func:`check` looks at one item (a path, bytes, a binary file object or an
``(array, sr)`` pair) for the watermark and, where the container carries any,
for reservation metadata, and says whether the item may be used for a given
purpose. :func:`filter_allowed` keeps the allowed items of an iterable.

The mapping from policy to use follows the policy table (DESIGN section 2):

================  ===========  ==============  =====  =========
policy            ai-training  genai-training  tdm    inference
================  ===========  ==============  =====  =========
no-ai-training    no           no              yes    yes
no-genai-training yes          no              yes    yes
no-tdm            no           no              no     no
consent-required  consent      consent         consent consent
ai-allowed        yes          yes             yes    yes
================  ===========  ==============  =====  =========

A restriction found anywhere (any watermark layer, any metadata field) wins:
``ai-allowed`` never overrides one. Audio too short to be checked reliably is
never reported as plainly allowed: its status is ``too-short``.

Audio up to a minute is decoded at once; longer audio is streamed in 30 s
windows at 16 kHz, so memory stays bounded whatever the input's length.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AudioFormatError, AudioIOError, NowmError, ParameterError
from .policy import get_policy

__all__ = [
    "check", "filter_allowed", "scan", "filter_manifest", "check_item", "warm", "Summary", "Verdict", "USES", "STATUSES", "MIN_CHECK_SECONDS",
    "AUDIO_EXTENSIONS", "restricts", "check_use",
]

#: Uses a verdict can be asked for, and the CAWG training-and-data-mining entry
#: each corresponds to.
USES = {
    "ai-training": "ai_training",
    "genai-training": "ai_generative_training",
    "tdm": "data_mining",
    "inference": "ai_inference",
}
#: Every status a verdict can have.
STATUSES = ("allowed", "reserved-watermark", "reserved-metadata", "too-short", "unreadable")
#: Shortest audio whose "no mark found" is a reliable verdict (the detector's
#: short-clip target is 3 s; it looks at 1.5 s and more, and a mark it finds in
#: shorter audio still counts).
MIN_CHECK_SECONDS = 3.0
#: File name suffixes taken as audio when walking folders and tar shards.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64", ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka",
})
_DETECT_SR = 16000
_DECODE_SECONDS = 60.0  # audio up to this long is decoded at once
_WINDOW_SECONDS = 30.0  # window of the streamed path (as files.detect_file)
_READ_SECONDS = 5.0


def check_use(use) -> str:
    """Validate a use name; return it."""
    if use not in USES:
        raise ParameterError(f"use={use!r} is unknown; choose one of: {', '.join(USES)}")
    return use


def restricts(policy, use: str, *, consent: bool = False) -> bool:
    """True when ``policy`` (a name or :class:`~nowm.Policy`) forbids ``use``.

    ``consent-required`` forbids every use unless ``consent`` is true (the caller
    holds the rightsholder's explicit, recorded opt-in).
    """
    pol = get_policy(policy)
    if USES[check_use(use)] not in pol.cawg_not_allowed:
        return False
    return not (pol.cawg_constrained and consent)


@dataclass
class Verdict:
    """What :func:`check` found about one item.

    Attributes
    ----------
    source : str
        The path, or a label for bytes, file objects and arrays.
    use : str
        The use asked about (one of :data:`USES`).
    allowed : bool
        True when the item may be used for ``use``.
    status : str
        One of :data:`STATUSES`: ``allowed``, ``reserved-watermark``,
        ``reserved-metadata``, ``too-short`` (shorter than the detector needs
        for a reliable "no mark"; not allowed unless ``allow_too_short``) or
        ``unreadable``.
    reason : str
        One human-readable sentence.
    layers : dict
        ``{key name: Detection}`` for every watermark layer searched (``public``,
        plus the private key's fingerprint when a key was given).
    metadata : nowm.metadata.TagReport or None
        Reservation metadata found in the container; None when not read
        (arrays, ``tags=False``, or the metadata reader is not available).
    duration : float or None
        Seconds of audio examined.
    error : str or None
        Why the audio (or its metadata) could not be read.
    """

    source: str
    use: str
    allowed: bool
    status: str
    reason: str
    layers: dict = field(default_factory=dict)
    metadata: object = None
    duration: float | None = None
    error: str | None = None

    @property
    def watermark(self):
        """The deciding watermark layer's Detection: a restrictive one, else a
        marked one, else the public layer's (None when nothing was searched)."""
        dets = list(self.layers.values())
        for d in dets:
            if d.marked and get_policy(d.policy).reserves:
                return d
        for d in dets:
            if d.marked:
                return d
        return dets[0] if dets else None

    def _wm(self, name):
        d = self.watermark
        return None if d is None else getattr(d, name)

    marked = property(lambda self: bool(self._wm("marked")), doc="A mark was found.")
    policy = property(lambda self: self._wm("policy"), doc="Policy of the mark found, or None.")
    owner = property(lambda self: self._wm("owner"), doc="Rightsholder id of the mark, or None.")
    false_alarm = property(lambda self: self._wm("false_alarm"),
                           doc="False-alarm probability of the best watermark match.")
    offset = property(lambda self: self._wm("offset"),
                      doc="Seconds from the item's start to the first pattern period found.")

    def to_dict(self) -> dict:
        """A flat, JSON-safe dict (non-finite floats become None)."""
        wm = self.watermark
        md = self.metadata
        d = {
            "path": self.source, "use": self.use, "allowed": self.allowed,
            "status": self.status, "reason": self.reason,
            "marked": bool(wm.marked) if wm is not None else False,
            "policy": wm.policy if wm is not None else None,
            "owner": wm.owner if wm is not None else None,
            "false_alarm": wm.false_alarm if wm is not None else None,
            "offset": wm.offset if wm is not None else None,
            "tempo": wm.tempo if wm is not None else None,
            "pitch": wm.pitch if wm is not None else None,
            "score": wm.score if wm is not None else None,
            "key": wm.key if wm is not None else None,
            "layers": [{"key": k, "marked": bool(v.marked), "policy": v.policy,
                        "owner": v.owner, "false_alarm": v.false_alarm}
                       for k, v in self.layers.items()],
            "duration": self.duration,
            "metadata_policy": getattr(md, "policy", None) if md is not None else None,
            "metadata": _findings(md),
            "error": self.error,
        }
        return _json_safe(d)


def _findings(md):
    if md is None:
        return None
    out = []
    for f in getattr(md, "findings", []) or []:
        out.append({k: getattr(f, k, None) for k in ("vocabulary", "field", "value", "policy",
                                                     "source")})
    return out


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating,)):
        return _json_safe(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# --- sources ---------------------------------------------------------------------------


class _Source:
    """One item to check: exactly one of ``path``, ``data``, ``fileobj``, ``array``."""

    def __init__(self, source, name=None):
        self.path = self.data = self.fileobj = self.array = None
        self.sr = None
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
            self.label = str(source) if name is None else str(name)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
            self.label = "<bytes>" if name is None else str(name)
        elif isinstance(source, tuple) and len(source) == 2:
            self.array, self.sr = source
            self.label = "<array>" if name is None else str(name)
        elif hasattr(source, "read"):
            self.fileobj = source
            self.label = str(name if name is not None else getattr(source, "name", "<file>"))
        else:
            raise ParameterError(
                f"source of type {type(source).__name__} is not supported; give a path, bytes, "
                "a binary file object or an (array, sr) pair")

    @property
    def has_container(self):
        return self.array is None


def _m4a_hint(head: bytes) -> str:
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return ("it is an MP4/M4A container, which soundfile cannot decode; decode it yourself "
                "and pass (array, sr), or convert it to FLAC")
    return ("nowm reads WAV, FLAC, Ogg Vorbis, Opus, MP3 and the other formats libsndfile "
            "knows; convert it first")


def _open(src: _Source):
    """Open a container source with soundfile; nowm errors on failure."""
    import soundfile as sf

    from . import audio
    from .files import open_audio

    if src.path is not None:
        try:
            return open_audio(src.path)
        except AudioFormatError as exc:
            if "not a readable audio file" in str(exc):
                try:
                    with open(src.path, "rb") as fh:
                        head = fh.read(12)
                except OSError:
                    head = b""
                if head[4:8] == b"ftyp":
                    raise AudioFormatError(f"{src.label}: {_m4a_hint(head)}") from None
            raise
    if src.data is not None:
        if not src.data:
            raise AudioFormatError(f"{src.label}: empty (0 bytes); it holds no audio")
        handle, head = io.BytesIO(src.data), src.data[:12]
    else:
        handle = src.fileobj
        try:
            pos = handle.tell()
            head = handle.read(12)
            handle.seek(pos)
        except (OSError, AttributeError, io.UnsupportedOperation):
            raise ParameterError(
                f"{src.label}: the file object is not seekable; read it into bytes first") from None
        if not head:
            raise AudioFormatError(f"{src.label}: empty; it holds no audio")
    try:
        f = sf.SoundFile(handle)
    except sf.LibsndfileError as exc:
        from .files import libsndfile_reason

        raise AudioFormatError(f"{src.label}: not a readable audio file "
                               f"({libsndfile_reason(exc)}); {_m4a_hint(head)}") from None
    except (OSError, RuntimeError, TypeError) as exc:
        raise AudioIOError(f"{src.label}: cannot open ({exc})") from None
    if not audio.MIN_SR <= f.samplerate <= audio.MAX_SR:
        f.close()
        raise AudioFormatError(
            f"{src.label}: sample rate {f.samplerate} Hz is outside {audio.MIN_SR}..{audio.MAX_SR} Hz")
    return f


def _windows(src: _Source, offset: float, duration):
    """Yield ``(x16, seconds)`` windows of the item in the 16 kHz mono detection
    domain, and finally ``(None, total_seconds)``.

    Up to :data:`_DECODE_SECONDS` the whole item is one window, decoded at once;
    longer items are streamed in 30 s windows with a streaming resampler.
    """
    from . import audio
    from .files import read_mono

    if src.array is not None:
        y = audio.valid_audio(src.array, src.sr)
        sr = int(src.sr)
        y2 = audio.as_float2d(y)
        a = int(round(offset * sr))
        b = len(y2) if duration is None else min(len(y2), a + int(round(duration * sr)))
        y2 = y2[a:b]
        if not len(y2):
            raise AudioFormatError(f"{src.label}: offset={offset} s is past the end of the audio")
        x = audio.resample(audio.to_mono(y2), sr, _DETECT_SR)
        yield x, len(y2) / sr
        yield None, len(y2) / sr
        return
    f = _open(src)
    with f:
        sr = f.samplerate
        start = int(round(offset * sr))
        if start:
            if f.frames > 0 and start >= f.frames:
                raise AudioFormatError(f"{src.label}: offset={offset} s is past the end "
                                       f"({f.frames / sr:.2f} s)")
            if getattr(f, "seekable", lambda: False)():
                f.seek(start)
            else:  # a reader without seek (e.g. PyAV's): read up to the segment
                left = start
                while left > 0:
                    got = len(read_mono(f, min(left, int(_READ_SECONDS * sr)), src.label))
                    if not got:
                        raise AudioFormatError(f"{src.label}: offset={offset} s is past the end")
                    left -= got
        known = f.frames - start if 0 < f.frames < 2**62 else None
        want = None if duration is None else max(0, int(round(duration * sr)))
        n = known if want is None else (want if known is None else min(want, known))
        limit = int(_DECODE_SECONDS * sr)
        if n is not None and n <= limit:
            mono = read_mono(f, n, src.label)
            if not len(mono):
                raise AudioFormatError(f"{src.label}: holds no audio samples (zero length)")
            x = audio.resample(mono, sr, _DETECT_SR)
            yield x, len(mono) / sr
            yield None, len(mono) / sr
            return
        yield from _stream(f, sr, want, src.label)


def _stream(f, sr, want, label):
    import soxr

    from .files import read_mono

    rs = soxr.ResampleStream(sr, _DETECT_SR, 1, dtype="float64", quality="HQ") if sr != _DETECT_SR else None
    window = int(_WINDOW_SECONDS * _DETECT_SR)
    block = int(_READ_SECONDS * sr)
    buf, have, total = [], 0, 0
    left = want
    last = False
    while not last:
        n = block if left is None else min(block, left)
        mono = read_mono(f, n, label) if n > 0 else np.zeros(0)
        total += len(mono)
        if left is not None:
            left -= len(mono)
        last = len(mono) < block or (left is not None and left <= 0)
        x = rs.resample_chunk(mono, last=last) if rs is not None else mono
        if len(x):
            buf.append(x)
            have += len(x)
        while have >= window:
            cat = np.concatenate(buf)
            yield cat[:window], window / _DETECT_SR
            buf, have = [cat[window:]], have - window
    if total == 0:
        raise AudioFormatError(f"{label}: holds no audio samples (zero length)")
    if have:
        tail = np.concatenate(buf)
        yield tail, len(tail) / _DETECT_SR
    yield None, total / sr


def _detect(src, keys, threshold, offset, duration):
    """``({key name: Detection}, seconds)`` for every key, decoding the audio once."""
    from .detection import MIN_DETECT_SECONDS, combine, detect_16k, next_lags

    results = {name: [] for name, _ in keys}
    lags = {name: None for name, _ in keys}  # a mark's frame grid, once a window finds it
    total = None
    seen = 0.0
    for x16, seconds in _windows(src, offset, duration):
        if x16 is None:
            total = seconds
            break
        start, seen = seen, seen + seconds
        if start and seconds < MIN_DETECT_SECONDS:
            continue  # a short tail after full windows adds nothing
        for name, key in keys:
            det = detect_16k(x16, key=key, threshold=threshold, lags=lags[name])
            lags[name] = next_lags(det, lags[name], len(x16))
            if det.offset is not None:
                det.offset += start  # counted from the item's start
            results[name].append(det)
        if all(r and r[-1].marked and r[-1].owner is not None and get_policy(r[-1].policy).reserves
               for r in results.values()):
            # a reservation with its owner on every layer: stop reading, as detect_file
            # does (an ai-allowed mark is read to the end: it overrides nothing found later)
            total = None
            break
    dets = {}
    for name, res in results.items():
        dets[name] = combine(res, threshold)
    seconds = total if total is not None else max(d.duration for d in dets.values())
    return dets, seconds


def _read_metadata(src: _Source):
    """``(TagReport or None, error or None)``."""
    try:
        from .metadata import read_tags
    except ImportError:
        return None, None
    try:
        if src.path is not None:
            return read_tags(src.path), None
        if src.data is not None:
            return read_tags(src.data), None
        pos = src.fileobj.tell()
        try:
            return read_tags(src.fileobj), None
        finally:
            src.fileobj.seek(pos)
    except NowmError as exc:
        return None, str(exc)
    except Exception as exc:  # a metadata parser must never sink the watermark verdict
        return None, f"{src.label}: metadata unreadable ({type(exc).__name__}: {exc})"


def _keys(key):
    from .keys import PUBLIC_KEY, resolve_key

    keys = [("public", PUBLIC_KEY)]
    if key is not None:
        k = resolve_key(key)
        if not k.is_public:
            keys.append((k.fingerprint, k))
    return keys


def check(source, *, use: str = "ai-training", key=None, threshold: float = 1e-6,
          consent: bool = False, tags: bool = True, offset: float = 0.0, duration=None,
          min_seconds: float = MIN_CHECK_SECONDS, allow_too_short: bool = False,
          name=None, metadata=None) -> Verdict:
    """May this audio be used for ``use``? Look for the watermark and metadata.

    Parameters
    ----------
    source : str, path, bytes, binary file object, or (np.ndarray, int)
        The item. File objects must be seekable (read a stream into bytes first).
    use : {'ai-training', 'genai-training', 'tdm', 'inference'}
        What the caller wants to do with it.
    key : None, nowm.Key or path
        Also search a private layer under this key (the public mark is always
        searched).
    threshold : float
        False-alarm probability that counts as marked (default 1e-6).
    consent : bool
        The caller holds the rightsholder's explicit, recorded opt-in: a
        ``consent-required`` reservation then allows the use.
    tags : bool
        Also read reservation metadata from the container (needs
        :mod:`nowm.metadata`).
    offset, duration : float
        Check only this segment (seconds), e.g. a manifest row or a cut.
    min_seconds : float
        Audio shorter than this in which no restriction is found gets the status
        ``too-short`` rather than ``allowed``.
    allow_too_short : bool
        Let such audio through (``allowed=True``) while keeping the status
        ``too-short``.
    name : str, optional
        Label for the item in the verdict (default: the path, ``<bytes>``...).
    metadata : nowm.metadata.TagReport, optional
        Metadata already read elsewhere (e.g. from the file an array was cut
        from); used instead of reading the source's own.

    Returns
    -------
    Verdict
        Never raises for unreadable audio: the verdict's status is
        ``unreadable`` and ``error`` says why.

    Raises
    ------
    ParameterError
        On a bad argument (unknown use, bad threshold or key, unsupported type).

    Examples
    --------
    >>> import numpy as np, nowm
    >>> y = np.random.default_rng(0).normal(0, 0.1, 10 * 16000)
    >>> v = nowm.check((y, 16000), use="ai-training")
    >>> v.allowed, v.status
    (True, 'allowed')
    """
    check_use(use)
    if not 0.0 < float(threshold) < 1.0:
        raise ParameterError(f"threshold={threshold!r} must be a probability in (0, 1)")
    if not (np.isfinite(offset) and offset >= 0):
        raise ParameterError(f"offset={offset!r} must be a non-negative number of seconds")
    if duration is not None and not (np.isfinite(duration) and duration > 0):
        raise ParameterError(f"duration={duration!r} must be a positive number of seconds")
    src = _Source(source, name)
    keys = _keys(key)
    md = md_error = None
    if metadata is not None:
        md = metadata
    elif tags and src.has_container:
        md, md_error = _read_metadata(src)
    layers, seconds, error = {}, None, None
    try:
        layers, seconds = _detect(src, keys, float(threshold), float(offset), duration)
    except ParameterError as exc:
        if src.array is None:
            raise
        error = str(exc)  # bad samples in an array: unreadable, like a bad file
    except (NowmError, OSError) as exc:
        error = str(exc) if str(exc).startswith(src.label) else f"{src.label}: {exc}"
    except MemoryError:
        error = f"{src.label}: out of memory while decoding"
    return _decide(src.label, use, consent, layers, md, seconds, error or md_error,
                   error is not None, min_seconds, allow_too_short)


def _decide(label, use, consent, layers, md, seconds, error, unreadable, min_seconds,
            allow_too_short) -> Verdict:
    def verdict(allowed, status, reason):
        return Verdict(label, use, allowed, status, reason, layers, md, seconds, error)

    for name, det in layers.items():
        if det.marked and restricts(det.policy, use, consent=consent):
            owner = "owner unknown" if det.owner is None else f"owner {det.owner}"
            layer = "" if name == "public" else f" (private layer {name})"
            return verdict(False, "reserved-watermark",
                           f"watermark{layer} says {det.policy} ({owner}, false-alarm probability "
                           f"{det.false_alarm:.1e}): {use} is not allowed")
    for fnd in getattr(md, "findings", None) or []:
        pol = getattr(fnd, "policy", None)
        if pol and pol in _policy_names() and restricts(pol, use, consent=consent):
            return verdict(False, "reserved-metadata",
                           f"metadata {fnd.vocabulary} {fnd.field}={fnd.value!r} says {pol}: "
                           f"{use} is not allowed")
    if unreadable:
        return verdict(False, "unreadable", error)
    notes = []
    consented = [d.policy for d in layers.values() if d.marked and restricts(d.policy, use)]
    consented += [f.policy for f in getattr(md, "findings", None) or []
                  if getattr(f, "policy", None) in _policy_names() and restricts(f.policy, use)]
    if consented:
        notes.append(f"{consented[0]} honoured by the consent you hold")
    found = [d for d in layers.values() if d.marked]
    if found:
        d = found[0]
        owner = "" if d.owner is None else f", owner {d.owner}"
        notes.append(f"watermark says {d.policy}{owner}")
    if md is None:
        notes.append("metadata not read")
    elif not getattr(md, "findings", None):
        notes.append("no reservation metadata")
    best = min((d.false_alarm for d in layers.values()), default=1.0)
    short = seconds is not None and seconds < min_seconds
    if short:
        detail = (f"{seconds:.2f} s of audio is too short for a reliable check (the detector needs "
                  f"{min_seconds:g} s); no restriction found")
        if allow_too_short:
            return verdict(True, "too-short", detail + f"; {use} allowed unchecked (allow_too_short)")
        return verdict(False, "too-short", detail + f"; not counted as allowed for {use}")
    if any(getattr(d, "reason", None) == "silent" for d in layers.values()):
        notes.append("digital silence (it carries no mark)")
    elif not found:
        notes.append(f"no mark found (best false-alarm probability {best:.2g})")
    return verdict(True, "allowed", f"{use} allowed: " + "; ".join(notes))


def _policy_names():
    from .policy import POLICIES

    return POLICIES


def filter_allowed(items, *, source=None, on_reject=None, **check_kwargs):
    """Yield the items of ``items`` that :func:`check` allows.

    Parameters
    ----------
    items : iterable
        Anything :func:`check` accepts, or anything ``source`` turns into that.
    source : callable, optional
        ``item -> source`` (e.g. ``lambda row: row["audio_filepath"]``).
    on_reject : callable, optional
        Called as ``on_reject(item, verdict)`` for every item left out.
    **check_kwargs
        Passed to :func:`check` (``use``, ``key``, ``consent``, ``tags``...).

    Examples
    --------
    >>> kept = list(nowm.filter_allowed(paths, use="genai-training"))  # doctest: +SKIP
    """
    for item in items:
        v = check(source(item) if source is not None else item, **check_kwargs)
        if v.allowed:
            yield item
        elif on_reject is not None:
            on_reject(item, v)


# --- scanning many items -----------------------------------------------------------------

#: Where an item came from, as record fields (None when not applicable).
WHERE_FIELDS = ("shard", "member", "manifest", "line")


def check_item(item, **check_kwargs) -> dict:
    """The scan record of one :class:`nowm.sources.Item`: the verdict's
    :meth:`Verdict.to_dict` plus where the item came from."""
    if item.error is not None:
        v = Verdict(item.label, check_kwargs.get("use", "ai-training"), False, "unreadable",
                    item.error, error=item.error)
    else:
        v = check(item.source, name=item.label, offset=item.offset, duration=item.duration,
                  **check_kwargs)
    rec = v.to_dict()
    for k in WHERE_FIELDS:
        rec[k] = item.extra.get(k)
    return rec


def warm():
    """Compile (or load from numba's cache) the detection kernels in this process."""
    rng = np.random.default_rng(0)
    check((rng.normal(0, 0.1, 2 * _DETECT_SR), _DETECT_SR), tags=False)


def _check_opts(use, key, threshold, consent, tags, min_seconds, allow_too_short):
    from .keys import resolve_key

    check_use(use)
    if not 0.0 < float(threshold) < 1.0:
        raise ParameterError(f"threshold={threshold!r} must be a probability in (0, 1)")
    return dict(use=use, key=None if key is None else resolve_key(key), threshold=float(threshold),
                consent=bool(consent), tags=bool(tags), min_seconds=float(min_seconds),
                allow_too_short=bool(allow_too_short))


def scan(paths, *, use: str = "ai-training", jobs: int = 1, key=None, threshold: float = 1e-6,
         consent: bool = False, tags: bool = True, min_seconds: float = MIN_CHECK_SECONDS,
         allow_too_short: bool = False, max_member_bytes=None, items=None):
    """Check every audio item under ``paths``; yield one record (dict) per item, in order.

    Parameters
    ----------
    paths : iterable of str or path
        Audio files, folders, glob patterns, JSONL manifests and tar shards
        (see :func:`nowm.sources.iter_items`).
    jobs : int
        Worker processes (0: one per core). The detection kernels are compiled
        once in this process before the workers start.
    use, key, threshold, consent, tags, min_seconds, allow_too_short
        As for :func:`check`.
    max_member_bytes : int, optional
        Largest tar member read (default :data:`nowm.sources.MAX_MEMBER_BYTES`).
    items : iterable of nowm.sources.Item, optional
        Items to check instead of ``paths``.

    Yields
    ------
    dict
        :meth:`Verdict.to_dict` plus ``shard``, ``member``, ``manifest``, ``line``.
        Unreadable items and broken manifest rows are records with an ``error``.
    """
    from . import sources

    opts = _check_opts(use, key, threshold, consent, tags, min_seconds, allow_too_short)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 0:
        raise ParameterError(f"jobs={jobs!r} must be a non-negative integer (0: one per core)")
    jobs = int(jobs) or (os.cpu_count() or 1)
    cap = sources.MAX_MEMBER_BYTES if max_member_bytes is None else int(max_member_bytes)
    if items is None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        items = sources.iter_items(paths, max_member_bytes=cap)
    if jobs == 1:
        for item in items:
            yield check_item(item, **opts)
        return
    yield from _pool(items, opts, jobs)


def _pool(items, opts, jobs):
    import collections
    import multiprocessing as mp
    from concurrent.futures import Future, ProcessPoolExecutor

    warm()  # forked workers inherit the compiled kernels
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)
    init = None if ctx.get_start_method() == "fork" else warm
    window = 4 * jobs  # items in flight: bounds memory (tar members are held as bytes)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init) as ex:
        pending = collections.deque()
        for item in items:
            if item.error is not None:  # nothing to compute: no round trip
                fut = Future()
                fut.set_result(check_item(item, **opts))
            else:
                fut = ex.submit(_pool_check, item, opts)
            pending.append(fut)
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _pool_check(item, opts):
    return check_item(item, **opts)


class Summary:
    """Counts of scan records by status, and the one-line summary."""

    def __init__(self):
        self.counts = {s: 0 for s in STATUSES}
        self.total = 0

    def add(self, rec: dict) -> None:
        self.total += 1
        self.counts[rec["status"]] = self.counts.get(rec["status"], 0) + 1

    def text(self) -> str:
        c = self.counts
        return (f"{self.total} items: {c['allowed']} allowed, {c['reserved-watermark']} reserved "
                f"by watermark, {c['reserved-metadata']} reserved by metadata, {c['too-short']} too "
                f"short to check, {c['unreadable']} unreadable")


class AtomicOutput:
    """A file written under a temporary name in its folder and renamed into place
    by :meth:`commit` (after fsync); :meth:`discard` removes it."""

    def __init__(self, path, *, force: bool = False, mode: str = "w"):
        import tempfile

        from .errors import OutputExistsError

        self.path = Path(path)
        if self.path.is_dir():
            raise AudioIOError(f"{self.path}: is a directory; give an output file name")
        if self.path.exists() and not force:
            raise OutputExistsError(f"{self.path}: exists; pass --force (force=True) to replace it")
        folder = self.path.parent
        if not folder.is_dir():
            raise AudioIOError(f"{folder}: no such folder for the output; create it first")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=folder)
        self.file = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))

    def commit(self):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)

    def discard(self):
        self.file.close()
        Path(self.tmp).unlink(missing_ok=True)


def rejected_path(dst) -> Path:
    """``out.jsonl`` -> ``out.rejected.jsonl``."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.rejected{dst.suffix or '.jsonl'}")


def filter_manifest(src, dst, *, rejected=None, jobs: int = 1, force: bool = False,
                    progress=None, **check_kwargs) -> Summary:
    """Copy the allowed rows of a NeMo-style JSONL manifest to ``dst``.

    Allowed rows are copied verbatim, in order. Every other row goes to
    ``rejected`` (default ``dst`` with ``.rejected`` before the suffix) as
    ``{"line", "status", "reason", "policy", "owner", "false_alarm", "row"}``,
    where ``row`` is the original object (or its text, when it was not valid
    JSON). Both files are written atomically; ``src`` is never modified.

    Parameters
    ----------
    src, dst : str or path
    rejected : str or path, optional
    jobs : int
        Worker processes, as for :func:`scan`.
    force : bool
        Replace ``dst`` and ``rejected`` if they exist.
    progress : callable, optional
        Wraps the record iterator (e.g. a progress bar).
    **check_kwargs
        As for :func:`check` (``use``, ``consent``, ``key``, ``tags``...).

    Returns
    -------
    Summary
    """
    import collections
    import json

    from . import sources

    src, dst = Path(src), Path(dst)
    rej = rejected_path(dst) if rejected is None else Path(rejected)
    if not src.is_file():
        raise AudioIOError(f"{src}: no such manifest file; check the path")
    same = {p.resolve() for p in (dst, rej) if p.exists()}
    if src.resolve() in same or dst.resolve() == rej.resolve():
        raise ParameterError(f"{src}: the input, the output and the rejected file must differ")
    rows = collections.deque()

    def items():
        for item in sources.iter_manifest(src):
            rows.append(item.extra)
            yield item

    out = AtomicOutput(dst, force=force)
    try:
        side = AtomicOutput(rej, force=force)
    except BaseException:
        out.discard()
        raise
    summary = Summary()
    records = scan(None, items=items(), jobs=jobs, **check_kwargs)
    if progress is not None:
        records = progress(records)
    try:
        for rec in records:
            extra = rows.popleft()
            summary.add(rec)
            if rec["allowed"]:
                out.file.write(extra["row_text"] + "\n")
            else:
                side.file.write(json.dumps(_json_safe({
                    "line": extra.get("line"), "status": rec["status"], "reason": rec["reason"],
                    "policy": rec["policy"], "owner": rec["owner"],
                    "false_alarm": rec["false_alarm"],
                    "row": extra.get("row", extra.get("row_text"))})) + "\n")
    except BaseException:
        out.discard()
        side.discard()
        raise
    out.commit()
    side.commit()
    return summary
