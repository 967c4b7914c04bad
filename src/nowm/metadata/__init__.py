"""Standard metadata: write the no-AI policy into the tags other tools read, and read it back.

Written per container (DESIGN section 6):

- WAV (RIFF, RF64, BW64): XMP in a ``_PMX`` chunk; ``LIST``/``INFO`` ``ICOP`` and ``ICMT``.
- MP3: ID3v2.4 ``PRIV`` (owner ``XMP``), ``USER``, ``TCOP``, ``WCOP``, ``TXXX:DataMining``.
- FLAC, Ogg Vorbis, Opus: Vorbis comments ``COPYRIGHT``, ``LICENSE``, ``DATAMINING``,
  ``TDM_RESERVATION``, ``TDM_POLICY``.
- M4A: ``cprt``, ``----:com.apple.iTunes:DATAMINING`` and an XMP ``uuid`` box.

The XMP packet carries ``plus:DataMining`` (full PLUS URI), ``tdm:reservation`` and
``tdm:policy`` (W3C TDMRep), ``xmpRights:Marked`` and ``xmpRights:UsageTerms``.

Reading also accepts bare ``DMI-*`` codes in free-text fields, a RIFF ``XMP `` chunk, an ID3
chunk in WAV, and the C2PA/CAWG ``training-mining`` assertion (with c2pa-python installed).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import AudioIOError, ParameterError
from ._report import TagFinding, TagReport
from ._vocab import RESTRICTIVENESS

__all__ = ["write_tags", "read_tags", "TagReport", "TagFinding", "CONTAINERS"]

#: Containers whose tags nowm writes and reads.
CONTAINERS = ("wav", "mp3", "flac", "ogg-vorbis", "ogg-opus", "ogg-flac", "mp4")
_NAMES = "WAV, MP3, FLAC, Ogg Vorbis, Opus and M4A"


def _open_source(source):
    """``(binary file, close_it, start position)`` for a path, bytes or file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return open(path, "rb"), True, 0
        except IsADirectoryError:
            raise AudioIOError(f"{path}: is a directory; give a file") from None
        except FileNotFoundError:
            raise AudioIOError(f"{path}: no such file; check the path") from None
        except OSError as exc:
            raise AudioIOError(f"{path}: cannot open ({exc.strerror or exc}); "
                               "check the path and permissions") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True, 0
    if hasattr(source, "read"):
        try:
            if source.seekable():
                return source, False, source.tell()
        except (AttributeError, OSError, ValueError):
            pass
        return io.BytesIO(source.read()), True, 0
    raise ParameterError(f"source={type(source).__name__} must be a path, bytes or a binary file object")


def _read_into(f, report: TagReport, *, c2pa: bool = True) -> None:
    from . import cawg, containers, riff

    f.seek(0, os.SEEK_END)
    size = f.tell()
    container = containers.sniff(f, size)
    report.container = None if container == "id3" else container
    if container is None:
        report.skip(f"not a container nowm reads tags from ({_NAMES}); nothing read")
        return
    if container == "wav":
        riff.read(f, size, report)
    elif container in ("mp3", "id3"):
        containers.read_id3(f, report)
        if container == "id3":
            report.skip("an ID3 tag followed by data that is not MP3 or FLAC; only the tag was read")
    elif container == "mp4":
        containers.read_mp4(f, size, report)
    else:
        containers.read_vorbis(f, container, report)
    if c2pa:
        cawg.read(f, container, report, size)


def read_tags(source) -> TagReport:
    """Read the rights metadata of an audio file.

    Parameters
    ----------
    source : str, path, bytes or binary file object
        A seekable file object is read from its start and left where it was.

    Returns
    -------
    TagReport
        Findings per vocabulary, the most restrictive policy they map to, and what was
        skipped (malformed, too large or unsupported data never raises).

    Raises
    ------
    AudioIOError
        ``source`` is a path that cannot be opened.

    Examples
    --------
    >>> from nowm.metadata import read_tags
    >>> read_tags(b"not audio").skipped[0][:38]
    'not a container nowm reads tags from ('
    """
    f, close, start = _open_source(source)
    report = TagReport()
    try:
        _read_into(f, report)
    except Exception as exc:  # hostile input that got past the checks: report, never raise
        report.skip(f"tag reading stopped ({type(exc).__name__}: {str(exc)[:200]})")
    finally:
        if close:
            f.close()
        else:
            try:
                f.seek(start)
            except Exception:
                pass
    return report


def _check_owner(owner) -> int:
    try:
        value = int(owner)
    except (TypeError, ValueError):
        raise ParameterError(f"owner={owner!r} must be an integer id in 0..{2**32 - 1}") from None
    if value != owner or not 0 <= value < 2**32:
        raise ParameterError(f"owner={owner!r} must be an integer id in 0..{2**32 - 1}")
    return value


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_mutagen(path, container, pol, owner):
    """Tags of an MP3, MP4 or Ogg/FLAC file written in place by mutagen: ``(notes, written)``."""
    from . import containers

    if container == "mp3":
        return containers.write_id3(path, pol, owner)
    if container == "mp4":
        return containers.write_mp4(path, pol, owner)
    return containers.write_vorbis(path, container, pol, owner)


def _write_direct(path, container, pol, owner, size):
    """Tags written straight into ``path`` (see ``write_tags(atomic=False)``); None when
    this file needs the copying route."""
    from . import riff

    try:
        if container == "wav":
            with open(path, "r+b") as f:
                res = riff.write_in_place(f, pol, owner, size)
            if res is None:
                return None
            notes, _ = res
        else:
            notes, _ = _write_mutagen(path, container, pol, owner)
    except OSError as exc:
        raise AudioIOError(f"{path}: cannot write tags ({exc.strerror or exc}); "
                           "check free space and permissions") from None
    except Exception as exc:  # mutagen refusing a malformed file
        return [f"tags not written: {type(exc).__name__}: {str(exc)[:200]}"]
    return notes


def write_tags(path, policy, *, owner: int = 0, atomic: bool = True) -> list:
    """Write ``policy`` into the tags of the audio file at ``path``, in place and atomically.

    Every existing tag, picture and chunk is kept and the audio bytes are not touched.
    nowm's own earlier values are replaced, never duplicated. Tags that already carry a
    more restrictive policy are left as they are (a restriction is never weakened).

    Parameters
    ----------
    path : str or path
        A WAV, MP3, FLAC, Ogg Vorbis, Opus or M4A file.
    policy : str or nowm.Policy
    owner : int
        Rightsholder id, named in the usage terms when not 0.
    atomic : bool
        True: the tags are written into a copy that then replaces the file, so a crash
        leaves the old file or the new one. False: the file is edited directly, without
        a copy (much faster on large files); only for a private file nobody else sees yet,
        such as an output still to be renamed into place.

    Returns
    -------
    list of str
        What was written or skipped, and why.

    Raises
    ------
    ParameterError
        Unknown policy or bad owner id.
    AudioIOError
        The file cannot be read or replaced (missing, permissions, disk full).
    """
    from ..policy import get_policy
    from . import cawg, containers, riff

    pol = get_policy(policy)
    owner = _check_owner(owner)
    path = Path(path)
    f, _, _ = _open_source(path)
    with f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        container = containers.sniff(f, size)
        existing = TagReport()
        signed = False
        if container is not None:
            try:
                _read_into(f, existing)
                signed = cawg.present(f, container, size)
            except Exception:
                pass
    if container is None:
        return [f"tags not written: nowm writes tags to {_NAMES} files, and this is none of them"]
    if container == "id3":
        return ["tags not written: an ID3 tag without MP3 or FLAC audio after it "
                "(truncated, or a format nowm does not write)"]
    if signed:
        return ["tags not written: the file carries a C2PA manifest, whose hash binding any "
                "edit would break; state the policy in a new C2PA manifest (a cawg.training-mining "
                "assertion) instead"]
    if existing.policy and RESTRICTIVENESS[existing.policy] > RESTRICTIVENESS[pol.name]:
        return [f"tags left unchanged: they already say {existing.policy}, more restrictive "
                f"than {pol.name} (nowm never weakens a restriction; edit the tags by hand)"]
    if not os.access(path, os.W_OK):
        raise AudioIOError(f"{path}: not writable; check its permissions")
    if not atomic:
        done = _write_direct(path, container, pol, owner, size)
        if done is not None:
            return done
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tags", dir=str(path.parent))
    except OSError as exc:
        raise AudioIOError(f"{path.parent}: cannot create a temporary file "
                           f"({exc.strerror or exc}); check the folder's permissions") from None
    os.close(fd)
    try:
        if container == "wav":
            with open(path, "rb") as src, open(tmp, "r+b") as dst:
                notes, written = riff.write(src, dst, pol, owner, size)
        else:
            shutil.copyfile(path, tmp)
            notes, written = _write_mutagen(tmp, container, pol, owner)
        if not written:
            Path(tmp).unlink(missing_ok=True)
            return notes
        _fsync(tmp)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AudioIOError(f"{path}: cannot write tags ({exc.strerror or exc}); "
                           "check free space and permissions") from None
    except Exception as exc:  # mutagen refusing a malformed file: nothing was replaced
        Path(tmp).unlink(missing_ok=True)
        return [f"tags not written: {type(exc).__name__}: {str(exc)[:200]}"]
    return notes
