"""M4A / MP4 / AAC files through PyAV (FFmpeg): decode, mark in blocks, re-encode.

libsndfile does not read MP4 or raw AAC, so :func:`nowm.files.embed_file` and
:func:`nowm.files.open_audio` hand these suffixes to this module. Audio is
decoded in FFmpeg frames and marked in the same blocks as every other format
(:func:`nowm.embedding.embed_block` on the global grid), so memory stays bounded
whatever the length. Lossy AAC is re-encoded once, at the source's bitrate and
sample rate; Apple Lossless stays lossless (ALAC, same bit depth). Tags (MP4
atoms, cover art included; ID3 on raw ``.aac``) are copied over with mutagen,
then the policy is added by :func:`nowm.metadata.write_tags` (``tags=True``).

Needs the ``m4a`` extra: ``pip install 'nowm[m4a]'`` (PyAV).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import deque
from pathlib import Path

import numpy as np

from .errors import AudioFormatError, AudioIOError, TooShortError

__all__ = ["SUFFIXES", "handles", "open_audio", "embed_file"]

#: Suffixes handled here rather than by libsndfile, and the FFmpeg muxer of each.
SUFFIXES = {".m4a": "ipod", ".m4b": "ipod", ".mp4": "mp4", ".aac": "adts"}
_CODECS = ("aac", "alac")
_INSTALL = "install PyAV with `pip install 'nowm[m4a]'`"


def handles(path) -> bool:
    """True if ``path`` is a file type read and written through PyAV."""
    return Path(path).suffix.lower() in SUFFIXES


def _av():
    try:
        import av
    except ImportError:
        raise AudioFormatError(f"M4A/AAC files need PyAV: {_INSTALL}") from None
    return av


class AvReader:
    """A read-only audio stream with the parts of ``soundfile.SoundFile`` nowm uses.

    ``read(n)`` returns float64 ``(m, channels)`` samples in [-1, 1] units, ``m < n``
    only at the end. ``frames`` is the length the container declares (exact for
    MP4, estimated from the bitrate for raw AAC).
    """

    def __init__(self, path):
        av = _av()
        self.name = str(path)
        try:
            self._container = av.open(self.name)
        except av.FFmpegError as exc:
            raise AudioFormatError(f"{path}: not a readable M4A/AAC file ({_reason(exc)})") from None
        except OSError as exc:
            raise AudioIOError(f"{path}: cannot open ({exc.strerror or exc})") from None
        c = self._container
        audio_streams = list(c.streams.audio)
        # cover art shows up as a video stream marked as an attached picture
        video = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not audio_streams:
            c.close()
            raise AudioFormatError(f"{path}: has no audio stream")
        if video:
            c.close()
            raise AudioFormatError(f"{path}: has a video stream; nowm marks audio-only files "
                                   "(extract the audio first, e.g. to .m4a)")
        st = self._stream = audio_streams[0]
        cc = st.codec_context
        self.codec = cc.name
        if self.codec not in _CODECS:
            c.close()
            raise AudioFormatError(f"{path}: audio codec {self.codec!r} in an MP4/AAC file; nowm "
                                   "re-encodes AAC and ALAC only, convert it first")
        self.samplerate = int(cc.sample_rate)
        self.channels = int(cc.channels)
        self.layout = cc.layout.name
        # ALAC decodes to s16p (16-bit) or s32p (20/24-bit, left-justified): keep 16 or 24
        self.bits = (16 if cc.format.name.startswith("s16") else 24) if self.codec == "alac" else 0
        self.bit_rate = int(st.bit_rate or cc.bit_rate or 0)
        self.format = "MP4" if c.format.name.startswith("mov") else c.format.name.upper()
        self.subtype = self.codec.upper()
        self._exact = None
        if st.duration is not None and st.time_base is not None and self.format == "MP4":
            self._exact = int(round(float(st.duration * st.time_base) * self.samplerate))
        seconds = float(st.duration * st.time_base) if st.duration is not None and st.time_base \
            else (c.duration or 0) / 1e6
        self.frames = self._exact if self._exact is not None else int(round(seconds * self.samplerate))
        self._frames_iter = c.decode(st)
        self._buf = deque()
        self._have = 0
        self._given = 0
        self._eof = False

    def _decode_more(self) -> bool:
        av = _av()
        try:
            frame = next(self._frames_iter)
        except StopIteration:
            self._eof = True
            return False
        except av.FFmpegError as exc:
            raise AudioFormatError(f"{self.name}: corrupt or truncated audio ({_reason(exc)})") from None
        a = frame.to_ndarray()
        if frame.format.is_planar:
            a = a.T
        else:
            a = a.reshape(-1, self.channels)
        if a.dtype.kind == "i":
            a = a / float(2 ** (8 * a.dtype.itemsize - 1))
        a = np.asarray(a, np.float64)
        if not np.isfinite(a).all():
            raise AudioFormatError(f"{self.name}: contains NaN or infinite samples; repair the file first")
        self._buf.append(a)
        self._have += len(a)
        return True

    def read(self, n, dtype="float64", always_2d=True):
        """Up to ``n`` samples as ``(m, channels)``; fewer only at the end."""
        if self._exact is not None:  # drop the encoder's padding after the declared end
            n = max(0, min(n, self._exact - self._given))
        while self._have < n and not self._eof:
            self._decode_more()
        n = min(n, self._have)
        parts, got = [], 0
        while got < n:
            a = self._buf.popleft()
            take = min(len(a), n - got)
            parts.append(a[:take])
            if take < len(a):
                self._buf.appendleft(a[take:])
            got += take
        self._have -= n
        self._given += n
        out = np.concatenate(parts) if parts else np.zeros((0, self.channels))
        return out.astype(dtype, copy=False)

    def close(self):
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reason(exc) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def open_audio(path) -> AvReader:
    """Open an M4A/MP4/AAC file for reading (see :class:`AvReader`)."""
    return AvReader(path)


def embed_file(src, dst, *, policy, owner, key, strength, force, tags=True, scheme):
    """The M4A/AAC branch of :func:`nowm.files.embed_file` (same contract)."""
    from . import audio
    from .embedding import (MIN_EMBED_SECONDS, OWNER_SECONDS, NowmWarning, _layers, check_owner,
                            check_strength, embed_block)
    from .files import (_BLOCK_SECONDS, _MARGIN_SECONDS, EmbedReport, _blocks, _check_readable, check_output,
                        _fsync)
    from .keys import resolve_key
    from .policy import get_policy

    av = _av()
    src = Path(src)
    pol = get_policy(policy)
    owner = check_owner(owner)
    depth = scheme.delta * check_strength(strength)
    key = resolve_key(key)
    _check_readable(src)
    check_output(src, dst, force)
    muxer = SUFFIXES.get(dst.suffix.lower()) or SUFFIXES[src.suffix.lower()]
    with AvReader(src) as f:
        sr, n_ch = f.samplerate, f.channels
        duration = f.frames / sr
        if f.frames <= 0:
            raise AudioFormatError(f"{src}: holds no audio samples (zero length)")
        if duration < MIN_EMBED_SECONDS:
            raise TooShortError(f"{src}: {duration:.3f} s of audio; a mark needs at least {MIN_EMBED_SECONDS} s")
        notes = []
        encode_kw = {}
        if f.codec == "aac":
            kbps = f.bit_rate / 1000 if f.bit_rate else src.stat().st_size * 8 / 1000 / max(duration, 1e-9)
            encode_kw["bit_rate"] = int(round(kbps * 1000))
            notes.append(f"lossy AAC re-encoded once at the source's {kbps:.0f} kbit/s, {sr} Hz")
            bits, sample_fmt = 0, "fltp"
        else:
            bits = f.bits
            sample_fmt = "s16p" if bits <= 16 else "s32p"
        chips = _layers(key, pol.code, owner, scheme)
        unit = audio.grid_unit(sr, scheme.sr)[0]
        block = max(unit, int(_BLOCK_SECONDS * sr) // unit * unit)
        margin = max(unit, -(-int(_MARGIN_SECONDS * sr) // unit) * unit)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=str(dst.parent))
        os.close(fd)
        sig = noise = 0.0
        written = 0
        try:
            with av.open(tmp, "w", format=muxer) as out:
                ost = out.add_stream(f.codec, rate=sr, layout=f.layout)
                if "bit_rate" in encode_kw:
                    ost.bit_rate = encode_kw["bit_rate"]
                if f.codec == "alac":
                    ost.format = sample_fmt
                for start, data, lo, hi in _blocks(f, block, margin, "float64"):
                    limit = 1.0 - 1.0 / 2 ** (bits - 1) if bits else max(1.0, float(np.abs(data).max()))
                    marked = embed_block(data, sr, start, chips, depth, limit, scheme)[lo:hi]
                    orig = data[lo:hi]
                    if bits:
                        q = float(2 ** (bits - 1))
                        res = np.clip(np.rint(marked * q), -q, q - 1)
                        marked = res / q
                        if sample_fmt == "s16p":
                            planes = res.astype(np.int16)
                        else:  # FFmpeg's ALAC takes 24-bit samples left-justified in 32
                            planes = (res * 2 ** (32 - bits)).astype(np.int32)
                    else:
                        planes = marked.astype(np.float32)
                    sig += float(np.sum(orig ** 2))
                    noise += float(np.sum((marked - orig) ** 2))
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes.T), format=sample_fmt,
                                                       layout=f.layout)
                    frame.sample_rate = sr
                    frame.pts = written
                    written += len(planes)
                    for packet in ost.encode(frame):
                        out.mux(packet)
                for packet in ost.encode(None):
                    out.mux(packet)
            _copy_tags(src, Path(tmp), muxer, notes)
            tag_notes = []
            if tags:
                from .metadata import write_tags

                tag_notes = write_tags(tmp, pol, owner=owner, atomic=False)
            _fsync(tmp)
            os.replace(tmp, dst)
        except av.FFmpegError as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) or getattr(exc, "errno", None) in (28, 13, 30):
                raise AudioIOError(f"{dst}: cannot write ({_reason(exc)}); check free space and permissions") from None
            raise AudioFormatError(f"{src}: cannot re-encode ({_reason(exc)})") from None
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, (AudioIOError, AudioFormatError)):
                raise
            raise AudioIOError(f"{dst}: cannot write ({exc.strerror or exc}); check free space and permissions") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    duration = written / sr
    owner_embedded = duration >= OWNER_SECONDS
    if not owner_embedded:
        notes.insert(0, f"audio is {duration:.1f} s: policy embedded; the owner id needs about "
                        f"{OWNER_SECONDS:.0f} s to be recovered")
        if owner:
            warnings.warn(f"{src}: " + notes[0], NowmWarning, stacklevel=3)
    snr = 10 * np.log10(sig / noise) if noise > 0 else float("inf")
    return EmbedReport(str(src), str(dst), pol.name, owner, owner_embedded, not key.is_public,
                       duration, sr, n_ch, f.format, f.subtype, float(snr), notes, tag_notes)


def _copy_tags(src: Path, tmp: Path, muxer: str, notes: list) -> None:
    """Carry the source's tags over verbatim (FFmpeg's own ``encoder`` tag is dropped)."""
    try:
        import mutagen  # noqa: F401  (only: is it installed?)
    except ImportError:
        notes.append(f"tags not carried over: mutagen is missing ({_INSTALL})")
        return
    if muxer == "adts":
        from mutagen.id3 import ID3, ID3NoHeaderError

        try:
            tags = ID3(str(src))
        except ID3NoHeaderError:
            return
        tags.save(str(tmp))
        return
    from mutagen.mp4 import MP4

    source = MP4(str(src))
    out = MP4(str(tmp))
    if out.tags is None:
        out.add_tags()
    out.tags.clear()
    if source.tags:
        out.tags.update(source.tags)
    out.save()

