"""Files: ``embed_file`` and ``detect_file``, format-preserving, atomic, in blocks.

Audio is streamed through soundfile in blocks with a margin either side, so a
two-hour file needs a few tens of MB whatever its length. Outputs are written to
a temporary file in the destination's folder and renamed into place; the input
is never written.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _kernels, _pyav, audio
from ._scheme import SCHEME
from .detection import (DEFAULT_THRESHOLD, MIN_DETECT_SECONDS, Detection,
                        combine, detect_16k, next_lags)
from .embedding import (MIN_EMBED_SECONDS, OWNER_SECONDS, NowmWarning, _layers,
                        check_owner, check_strength, watermark_block)
from .errors import (AudioFormatError, AudioIOError, OutputExistsError, ParameterError,
                     TooShortError)
from .keys import resolve_key
from .policy import DEFAULT_POLICY, get_policy

__all__ = ["embed_file", "detect_file", "EmbedReport", "default_output", "open_audio"]

_BLOCK_SECONDS = 20.0
_MARGIN_SECONDS = 0.25
_WINDOW_SECONDS = 30.0  # detection window on long files
_LOSSY = {"MPEG_LAYER_III", "MPEG_LAYER_II", "MPEG_LAYER_I", "VORBIS", "OPUS"}
_TEXT_FIELDS = ("title", "copyright", "software", "artist", "comment", "date", "album",
                "license", "tracknumber", "genre")
# measured bitrates (kbit/s, stereo) of libsndfile's compression levels 0 .. 0.9
_LEVELS = np.linspace(0.0, 0.9, 10)
_KBPS = {
    "MPEG_LAYER_III": 320.0 - 290.0 * _LEVELS,
    "VORBIS": np.interp(_LEVELS, [0, .3, .5, .66, .8, .9], [522, 229, 176, 122, 106, 90]),
    "OPUS": np.interp(_LEVELS, [0, .3, .5, .66, .8, .9], [474, 337, 245, 170, 106, 80]),
}


@dataclass
class EmbedReport:
    """What :func:`embed_file` wrote."""

    src: str
    dst: str
    policy: str
    owner: int
    owner_embedded: bool
    private_layer: bool
    duration: float
    samplerate: int
    channels: int
    format: str
    subtype: str
    snr_db: float
    notes: list = field(default_factory=list)
    tags: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def default_output(src) -> Path:
    """``track.wav`` -> ``track.nowm.wav`` in the same folder."""
    src = Path(src)
    return src.with_name(f"{src.stem}.nowm{src.suffix}")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioIOError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise AudioIOError(f"{path}: is a directory; give an audio file (or use `nowm batch` for folders)")
    if not os.access(path, os.R_OK):
        raise AudioIOError(f"{path}: permission denied; make the file readable")
    if path.stat().st_size == 0:
        raise AudioFormatError(f"{path}: empty file (0 bytes); it holds no audio")


def libsndfile_reason(exc) -> str:
    """libsndfile's reason for refusing a file, readable: for data it cannot parse it
    says the file "does not exist or is not a regular file", which misleads once the
    file was found to be a readable regular file."""
    msg = str(exc).split(":")[-1].strip() or "unknown error"
    if "does not exist or is not a regular file" in msg:
        return "unrecognised format or corrupt data"
    return msg


def open_audio(path):
    """Open ``path`` for reading with soundfile (M4A/AAC: PyAV), turning errors into nowm's."""
    import soundfile as sf

    path = Path(path)
    _check_readable(path)
    if _pyav.handles(path):  # M4A/MP4/AAC: libsndfile cannot read them
        return _pyav.open_audio(path)
    try:
        f = sf.SoundFile(str(path))
    except sf.LibsndfileError as exc:
        raise AudioFormatError(
            f"{path}: not a readable audio file ({libsndfile_reason(exc)}); nowm reads WAV, FLAC, Ogg Vorbis, "
            "Opus, MP3 and the other formats libsndfile knows; convert it first"
        ) from None
    except (OSError, RuntimeError) as exc:
        raise AudioIOError(f"{path}: cannot open ({exc})") from None
    if f.samplerate < audio.MIN_SR or f.samplerate > audio.MAX_SR:
        f.close()
        raise AudioFormatError(
            f"{path}: sample rate {f.samplerate} Hz is outside {audio.MIN_SR}..{audio.MAX_SR} Hz")
    return f


def _blocks(f, block: int, margin: int, dtype):
    """Yield ``(start, data_with_margins, lo, hi)`` for consecutive blocks of ``f``.

    ``data[lo:hi]`` is the block itself; the rest is context. Reads sequentially.
    """
    n_ch = f.channels
    prev = np.zeros((0, n_ch), dtype)
    nxt = _read(f, block + margin, dtype)
    start = 0
    while len(nxt):
        body, ahead = nxt[:block], nxt[block:]
        more = _read(f, block + margin - len(ahead), dtype) if len(nxt) > block else np.zeros((0, n_ch), dtype)
        ahead = np.concatenate([ahead, more]) if len(more) else ahead
        data = np.concatenate([prev, body, ahead[:margin]])
        yield start - len(prev), data, len(prev), len(prev) + len(body)
        start += len(body)
        prev = body[-margin:] if margin else body[:0]
        nxt = ahead


def _read(f, n, dtype, label=None, check: bool = True):
    """Read up to ``n`` frames as ``(frames, channels)`` ``dtype``; errors name ``label``
    (default: the file's name). ``check``: refuse NaN and infinity in float files."""
    import soundfile as sf

    label = f.name if label is None else label
    try:
        data = f.read(n, dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFormatError(f"{label}: corrupt or truncated audio ({exc})") from None
    if check and data.dtype.kind == "f" and _float_source(f) and not np.isfinite(data).all():
        raise _nonfinite(label)
    return data


def _nonfinite(label):
    return AudioFormatError(f"{label}: contains NaN or infinite samples; repair the file first")


def read_mono(f, n, label=None) -> np.ndarray:
    """Read up to ``n`` frames of an open file as a float64 mono downmix in [-1, 1] units.

    Integer PCM is read raw and downmixed by a kernel, which also checks for NaN and
    infinity on the way: ten times faster than letting libsndfile convert to float.
    """
    label = f.name if label is None else label
    dtype, scale = _raw_dtype(getattr(f, "subtype", ""), "float32")
    data = _read(f, n, dtype, label, check=False)
    mono = np.empty(len(data))
    if not np.isfinite(_kernels.downmix(data, scale, 0, mono)[0]):
        raise _nonfinite(label)
    return mono


def _float_source(f) -> bool:
    """Whether ``f`` stores floating-point samples, the only kind that can hold NaN or
    infinity (integer PCM and lossy decoders cannot), so reads of the rest skip the check."""
    return getattr(f, "subtype", "FLOAT") in ("FLOAT", "DOUBLE")  # no subtype: assume float


def _int_bits(subtype: str):
    return {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}.get(subtype)


def _raw_dtype(subtype: str, float_dtype: str = "float64"):
    """How to read a file fast and exactly: integer samples in the smallest exact
    container (libsndfile converts them to float at a tenth of the speed), anything
    else as ``float_dtype``. Returns ``(dtype, scale)``, ``scale`` taking the raw
    samples to [-1, 1] units."""
    bits = _int_bits(subtype)
    if not bits:
        return float_dtype, 1.0
    dtype = "int16" if bits <= 16 else "int32"
    return dtype, 1.0 / 2 ** (8 * np.dtype(dtype).itemsize - 1)


def _compression_level(subtype: str, kbps: float, channels: int):
    table = _KBPS.get(subtype)
    if table is None or not np.isfinite(kbps) or kbps <= 0:
        return None
    kbps = kbps * (2.0 / max(channels, 1)) ** 0.5  # tables are for stereo
    # lowest level (highest quality) whose bitrate is still >= the source's
    ok = np.flatnonzero(table >= kbps)
    return float(_LEVELS[ok[-1]]) if len(ok) else 0.0


def check_output(src: Path, dst: Path, force: bool) -> None:
    """Refuse an output that is the input, exists (unless ``force``) or is a folder."""
    if dst.exists() and dst.resolve() == src.resolve():
        raise OutputExistsError(f"{dst}: is the input file; nowm never overwrites its input, choose another output")
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst}: exists; pass --force (force=True) to replace it")
    if dst.is_dir():
        raise AudioIOError(f"{dst}: is a directory; give an output file name")


def embed_file(src, dst=None, *, policy=DEFAULT_POLICY, owner=0, key=None, strength=1.0,
               force: bool = False, tags: bool = True, scheme=SCHEME) -> EmbedReport:
    """Write a marked copy of ``src`` to ``dst`` in the same format and subtype.

    Parameters
    ----------
    src : str or path
        Audio file (WAV, FLAC, Ogg Vorbis, Opus, MP3, ...). Never modified.
    dst : str or path, optional
        Output; default ``src`` with ``.nowm`` before the suffix.
    policy, owner, key, strength
        As for :func:`nowm.embed`.
    force : bool
        Overwrite ``dst`` if it exists (atomically).
    tags : bool
        Carry the input's tags, pictures and metadata chunks over to the output and write
        the policy into its standard metadata (:func:`nowm.metadata.write_tags`);
        ``EmbedReport.tags`` says what was written. False: only the basic text fields
        libsndfile copies (title, artist, copyright, ...) are kept.

    Returns
    -------
    EmbedReport

    Raises
    ------
    AudioIOError, AudioFormatError, OutputExistsError, ParameterError, TooShortError
    """
    import soundfile as sf

    src = Path(src)
    dst = default_output(src) if dst is None else Path(dst)
    if _pyav.handles(src):  # M4A/MP4/AAC: decoded and re-encoded through PyAV
        return _pyav.embed_file(src, dst, policy=policy, owner=owner, key=key, strength=strength,
                                force=force, tags=tags, scheme=scheme)
    pol = get_policy(policy)
    owner = check_owner(owner)
    depth = scheme.delta * check_strength(strength)
    key = resolve_key(key)
    f = open_audio(src)
    with f:
        check_output(src, dst, force)
        sr, n_ch, frames = f.samplerate, f.channels, f.frames
        duration = frames / sr if frames > 0 else 0.0
        if frames <= 0:
            raise AudioFormatError(f"{src}: holds no audio samples (zero length)")
        if duration < MIN_EMBED_SECONDS:
            raise TooShortError(f"{src}: {duration:.3f} s of audio; a mark needs at least {MIN_EMBED_SECONDS} s")
        notes = []
        owner_embedded = duration >= OWNER_SECONDS
        if not owner_embedded:
            notes.append(f"audio is {duration:.1f} s: policy embedded; the owner id needs about "
                         f"{OWNER_SECONDS:.0f} s to be recovered")
        fmt, subtype = f.format, f.subtype
        bits = _int_bits(subtype)
        write_kw = {}
        if subtype in _LOSSY:
            kbps = src.stat().st_size * 8 / 1000 / max(duration, 1e-9)
            level = _compression_level(subtype, kbps, n_ch)
            if level is not None:
                write_kw["compression_level"] = level
            if subtype == "MPEG_LAYER_III":
                write_kw["bitrate_mode"] = "CONSTANT"
            notes.append(f"lossy {subtype} re-encoded once at about the source's {kbps:.0f} kbit/s")
        read_dtype, scale = _raw_dtype(subtype)
        chips = _layers(key, pol.code, owner, scheme)
        unit = audio.grid_unit(sr, scheme.sr)[0]
        block = max(unit, int(_BLOCK_SECONDS * sr) // unit * unit)
        margin = max(unit, -(-int(_MARGIN_SECONDS * sr) // unit) * unit)
        dst.parent.mkdir(parents=True, exist_ok=True) if not dst.parent.exists() else None
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=str(dst.parent))
        os.close(fd)
        try:
            with sf.SoundFile(tmp, "w", sr, n_ch, subtype=subtype, format=fmt, **write_kw) as out:
                for field_name in _TEXT_FIELDS:
                    value = getattr(f, field_name, "")
                    if value:
                        try:
                            setattr(out, field_name, value)
                        except Exception:  # a container that cannot hold this field
                            notes.append(f"tag {field_name} not carried over")
                q = float(2 ** (bits - 1)) if bits else 0.0
                out_scale = 2.0 ** (8 * np.dtype(read_dtype).itemsize - bits) if bits else 1.0
                limit = 1.0 - 1.0 / q if bits else 1.0
                sums = np.zeros(2)
                for start, data, lo, hi in _blocks(f, block, margin, read_dtype):
                    if not bits:
                        limit = max(1.0, float(np.abs(data).max()))
                    w = watermark_block(data, scale, sr, start, chips, depth, limit, scheme)
                    marked_out = np.empty((hi - lo, n_ch), read_dtype)
                    _kernels.mix_out(data, scale, w, lo, hi, q, out_scale, marked_out, sums)
                    out.write(marked_out)
                sig, noise = float(sums[0]), float(sums[1])
            tag_notes = []
            if tags:
                from .metadata import write_tags
                from .metadata._carry import carry_over

                tag_notes = carry_over(src, tmp) + write_tags(tmp, pol, owner=owner, atomic=False)
            _fsync(tmp)
            os.replace(tmp, dst)
        except sf.LibsndfileError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise AudioIOError(f"{dst}: cannot write ({exc})") from None
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise AudioIOError(f"{dst}: cannot write ({exc.strerror or exc}); check free space and permissions") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    snr = 10 * np.log10(sig / noise) if noise > 0 else float("inf")
    if not owner_embedded and owner:
        warnings.warn(f"{src}: " + notes[0], NowmWarning, stacklevel=2)
    return EmbedReport(str(src), str(dst), pol.name, owner, owner_embedded,
                       not key.is_public, duration, sr, n_ch, fmt, subtype, float(snr), notes,
                       tag_notes)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def detect_file(path, *, key=None, threshold: float = DEFAULT_THRESHOLD, full: bool = False,
                tags: bool = True, scheme=SCHEME) -> Detection:
    """Detect a nowm mark in an audio file, streaming it in windows.

    Parameters
    ----------
    path : str or path
    key : None, nowm.Key or path
    threshold : float
        False-alarm probability that counts as marked.
    full : bool
        Examine the whole file even after a confident verdict with an owner id
        (by default a long file stops early once that is reached).
    tags : bool
        Also read the file's rights metadata into ``Detection.tags``
        (a :class:`nowm.metadata.TagReport`, separate from the watermark verdict).

    Returns
    -------
    Detection
        ``duration`` is the file's length; ``offset`` counts from the file start.
    """
    import soxr

    if not 0.0 < float(threshold) < 1.0:
        raise ParameterError(f"threshold={threshold!r} must be a probability in (0, 1)")
    key = resolve_key(key)
    f = open_audio(path)
    with f:
        sr = f.samplerate
        total = f.frames / sr if f.frames > 0 else 0.0
        if f.frames <= 0:
            raise AudioFormatError(f"{path}: holds no audio samples (zero length)")
        window = int(_WINDOW_SECONDS * scheme.sr)
        rs = soxr.ResampleStream(sr, scheme.sr, 1, dtype="float64", quality="HQ") if sr != scheme.sr else None
        buf = []
        have = 0
        results = []
        lags = None  # every frame grid until a window finds the mark
        read_block = int(5 * sr)
        seen = 0.0
        while True:
            mono = read_mono(f, read_block)
            last = len(mono) < read_block
            x = rs.resample_chunk(mono, last=last) if rs is not None else mono
            if len(x):
                buf.append(x)
                have += len(x)
            while have >= window or (last and have > 0):
                cat = np.concatenate(buf)
                # a short tail is merged into the previous window's neighbour
                if last and have < window:
                    seg, rest = cat, cat[:0]
                else:
                    seg, rest = cat[:window], cat[window:]
                if len(seg) >= MIN_DETECT_SECONDS * scheme.sr or not results:
                    det = detect_16k(seg, key=key, threshold=threshold, scheme=scheme,
                                     lags=lags)
                    lags = next_lags(det, lags, len(seg), scheme)
                    det.offset = None if det.offset is None else det.offset + seen
                    results.append(det)
                seen += len(seg) / scheme.sr
                buf, have = ([rest] if len(rest) else []), len(rest)
                if last and have == 0:
                    break
                if not full and results and results[-1].marked and results[-1].owner is not None:
                    last = True
                    break
            if last:
                break
    det = combine(results, threshold, scheme)
    det.duration = total
    if tags:
        from .metadata import read_tags

        det.tags = read_tags(path)
    return det
