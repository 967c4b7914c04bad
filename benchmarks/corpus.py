"""Real music (and synthetic speech) for nowm's benchmarks.

The music comes from four Debian packages of freely licensed game soundtracks
(see ``/work/shared/corpus/README.md``). They are fetched with ``apt-get download``
and unpacked with ``dpkg -x`` into a cache folder outside the repository; nothing
here needs root, and no audio is ever written inside the repository.

Cache layout (default ``~/.cache/nowm-corpus``, or ``$NOWM_CORPUS_DIR``)::

    debs/PKG_VERSION_all.deb      the downloaded packages
    raw/PKG_VERSION_all/...       each package unpacked with ``dpkg -x``
    pk3/GAME/...                  the .pk3 (zip) archives of nexuiz and ufoai, unzipped
    wav/SR/PACKAGE/NAME.wav       decoded, resampled stereo float32 WAV (see `load_track`)
    speech/...                    espeak-ng output (see `speech`)

Run ``python benchmarks/corpus.py`` to fetch everything and print a table.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "PACKAGES",
    "CorpusError",
    "Track",
    "Excerpt",
    "SpeechClip",
    "corpus_dir",
    "fetch",
    "list_tracks",
    "load_track",
    "excerpts",
    "load_excerpt",
    "speech",
]

#: Debian packages whose music makes up the corpus.
PACKAGES = ("singularity-music", "nexuiz-music", "ufoai-music", "hyperrogue-music")

#: Per package floor on track duration in seconds, whatever ``min_duration`` is asked
#: for: most of hyperrogue-music's files are short sound effects, not music.
_PACKAGE_MIN_DURATION = {"hyperrogue-music": 60.0}

#: Tracks sampled below this rate are not music-quality (nexuiz has an 11025 Hz file).
_MIN_SAMPLERATE = 32000

_AUDIO_SUFFIXES = (".ogg", ".oga", ".flac", ".wav")

_ENV_VAR = "NOWM_CORPUS_DIR"


class CorpusError(RuntimeError):
    """The corpus could not be fetched, unpacked or read."""


@dataclass(frozen=True)
class Track:
    """One music track of the corpus.

    Attributes
    ----------
    path : Path
        The original file (Ogg Vorbis) inside the cache folder.
    package : str
        Debian package it comes from.
    name : str
        File name without extension, unique within its package.
    licence : str
        Licence of this file, read from ``/usr/share/doc/PKG/copyright``
        (a DEP-5 short name such as ``CC-BY-SA-3.0`` when it can be identified).
    duration : float
        Length in seconds.
    samplerate : int
        Original sample rate in Hz.
    channels : int
        Original number of channels.
    attribution : str
        Copyright holders named for this file, if the copyright file says.
    """

    path: Path
    package: str
    name: str
    licence: str
    duration: float
    samplerate: int
    channels: int
    attribution: str = ""

    @property
    def key(self) -> str:
        """Unique name across the corpus: ``package/name``."""
        return f"{self.package}/{self.name}"


@dataclass(frozen=True)
class Excerpt:
    """A time span of a track.

    Attributes
    ----------
    track : str
        `Track.key` of the track.
    path : Path
        The track's original file (so `load_excerpt` needs no corpus scan).
    start : float
        Start time in seconds.
    length : float
        Length in seconds.
    """

    track: str
    path: Path
    start: float
    length: float


@dataclass(frozen=True)
class SpeechClip:
    """A synthetic speech passage made by espeak-ng. Not a human recording.

    Attributes
    ----------
    text : str
        What was said.
    voice : str
        espeak-ng voice name.
    words_per_minute : int
        espeak-ng speaking rate.
    y : np.ndarray [shape=(n, 2)]
        float32 stereo audio at `sr`.
    sr : int
        Sample rate in Hz.
    label : str
        Always ``"synthetic speech (espeak-ng)"``: report these figures apart from music.
    """

    text: str
    voice: str
    words_per_minute: int
    y: np.ndarray
    sr: int
    label: str = "synthetic speech (espeak-ng)"


# --------------------------------------------------------------------------------------
# Fetching


def corpus_dir() -> Path:
    """Return the cache folder: ``$NOWM_CORPUS_DIR`` or ``~/.cache/nowm-corpus``."""
    return Path(os.environ.get(_ENV_VAR) or "~/.cache/nowm-corpus").expanduser()


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise CorpusError(f"{cmd[0]!r} is not installed; it is needed to fetch the corpus") from exc
    except subprocess.CalledProcessError as exc:
        raise CorpusError(
            f"{' '.join(cmd)!r} failed in {cwd} (exit {exc.returncode}): {exc.stderr.strip()}"
            + ("\n(try 'apt-get update' first)" if cmd[0] == "apt-get" else "")
        ) from exc


def _download_deb(package: str, debs: Path) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        debs.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise CorpusError(f"apt-get download {package} left no {package}_*.deb in {debs}")
    return found[-1]


def _unpack_deb(deb: Path, raw: Path) -> Path:
    target = raw / deb.stem
    if target.is_dir():
        return target
    raw.mkdir(parents=True, exist_ok=True)
    # Unpack into a temporary sibling and rename, so a crash never leaves a half tree.
    tmp = Path(tempfile.mkdtemp(prefix=f".{deb.stem}.", dir=raw))
    try:
        _run(["dpkg", "-x", str(deb), str(tmp)], cwd=raw)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _unzip_pk3(archive: Path, dest: Path) -> None:
    """Extract the audio inside a .pk3 (a zip file) into ``dest``, unless already done."""
    if dest.is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(_AUDIO_SUFFIXES)]
            zf.extractall(tmp, members=members)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _game_name(package: str) -> str:
    return package.removesuffix("-music")


def fetch(
    packages: tuple[str, ...] = PACKAGES, *, cache_dir: Path | None = None
) -> dict[str, Path]:
    """Download and unpack the corpus packages unless they are already in the cache.

    Parameters
    ----------
    packages : tuple of str
        Debian package names.
    cache_dir : Path, optional
        Cache folder; default `corpus_dir()`.

    Returns
    -------
    dict of str to Path
        Each package's unpacked root (``raw/PKG_VERSION_all``).

    Raises
    ------
    CorpusError
        If ``apt-get download``, ``dpkg -x`` or unzipping fails.
    """
    root = Path(cache_dir) if cache_dir is not None else corpus_dir()
    roots = {}
    for package in packages:
        unpacked = _unpack_deb(_download_deb(package, root / "debs"), root / "raw")
        for archive in sorted(unpacked.rglob("*.pk3")):
            _unzip_pk3(archive, root / "pk3" / _game_name(package))
        roots[package] = unpacked
    return roots


# --------------------------------------------------------------------------------------
# Licences


def _dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """Split a DEP-5 copyright file into paragraphs of ``field -> value``."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        current = None
        for line in block.splitlines():
            if line[:1].isspace() and current is not None:
                fields[current] += "\n" + line.strip()
            elif ":" in line:
                current, _, value = line.partition(":")
                fields[current] = value.strip()
        if fields:
            paragraphs.append(fields)
    return paragraphs


def _pattern_matches(pattern: str, relpath: str) -> bool:
    # Compare trailing path components only: the copyright file says
    # "base/music/x.ogg" where the unzipped .pk3 holds "music/x.ogg".
    p_parts, t_parts = pattern.split("/"), relpath.split("/")
    k = min(len(p_parts), len(t_parts))
    return fnmatch.fnmatchcase("/".join(t_parts[-k:]), "/".join(p_parts[-k:]))


def _dep5_licence(text: str, relpath: str) -> tuple[str, str]:
    licence, holders = "", ""
    for para in _dep5_paragraphs(text):
        patterns = para.get("Files", "").split()
        if any(_pattern_matches(p, relpath) for p in patterns):  # the last match wins
            licence = para.get("License", "").split("\n")[0].strip()
            holders = "; ".join(s for s in para.get("Copyright", "").split("\n") if s.strip())
    return licence, holders


def _free_text_licence(text: str) -> tuple[str, str]:
    licence = ""
    cc = re.search(r"Attribution-ShareAlike (\d\.\d)", text)
    if "CREATIVE COMMONS" in text.upper() and cc:
        licence = f"CC-BY-SA-{cc.group(1)}"
    elif "GNU General Public License" in text and re.search(r"version 2", text):
        licence = "GPL-2+" if "any later version" in text else "GPL-2"
    holder = re.search(r"^\s*(Copyright \(C\).*|.*©.*)$", text, flags=re.MULTILINE)
    return licence, holder.group(1).strip() if holder else ""


def _licence(copyright_file: Path, relpath: str) -> tuple[str, str]:
    """Return (licence short name, copyright holders) of one file of a package."""
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown (no copyright file)", ""
    if text.startswith("Format:"):
        licence, holders = _dep5_licence(text, relpath)
    else:
        licence, holders = _free_text_licence(text)
    return licence or f"see {copyright_file}", holders


# --------------------------------------------------------------------------------------
# Tracks


def _audio_files(package: str, unpacked: Path, root: Path) -> list[tuple[Path, Path]]:
    """(file, folder it is relative to) for each audio file of a package."""
    bases = [unpacked, root / "pk3" / _game_name(package)]
    return [
        (path, base)
        for base in bases
        if base.is_dir()
        for path in sorted(base.rglob("*"))
        if path.suffix.lower() in _AUDIO_SUFFIXES and path.is_file()
    ]


def list_tracks(
    min_duration: float = 60.0,
    *,
    packages: tuple[str, ...] = PACKAGES,
    cache_dir: Path | None = None,
) -> list[Track]:
    """List the corpus's music tracks, fetching the packages first if needed.

    Parameters
    ----------
    min_duration : float
        Shortest track kept, in seconds. hyperrogue-music files are always held to
        at least 60 s, because its short files are sound effects.
    packages : tuple of str
        Debian packages to include.
    cache_dir : Path, optional
        Cache folder; default `corpus_dir()`.

    Returns
    -------
    list of Track
        Sorted by package then name. Tracks below 32 kHz are skipped.

    Examples
    --------
    >>> tracks = list_tracks()
    >>> sorted({t.package for t in tracks})[0]
    'hyperrogue-music'
    """
    root = Path(cache_dir) if cache_dir is not None else corpus_dir()
    tracks = []
    for package, unpacked in fetch(packages, cache_dir=root).items():
        copyright_file = unpacked / "usr" / "share" / "doc" / package / "copyright"
        floor = max(min_duration, _PACKAGE_MIN_DURATION.get(package, 0.0))
        for path, base in _audio_files(package, unpacked, root):
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError) as exc:
                warnings.warn(f"skipping unreadable {path}: {exc}", stacklevel=2)
                continue
            if info.duration < floor or info.samplerate < _MIN_SAMPLERATE:
                continue
            licence, holders = _licence(copyright_file, path.relative_to(base).as_posix())
            tracks.append(
                Track(path, package, path.stem, licence, info.duration,
                      info.samplerate, info.channels, holders)
            )
    _check_unique(tracks)
    return sorted(tracks, key=lambda t: (t.package, t.name))


def _check_unique(tracks: list[Track]) -> None:
    keys = [t.key for t in tracks]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise CorpusError(f"track names are not unique within their package: {duplicates}")


def _cached_wav(path: Path, sr: int) -> Path:
    """Where the decoded copy of ``path`` at rate ``sr`` lives."""
    root = corpus_dir()
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:  # a file outside the cache folder: key it by its full path
        rel = Path("external", *path.resolve().parts[1:])
    return root / "wav" / str(sr) / rel.with_suffix(".wav")


def _to_stereo(y: np.ndarray) -> np.ndarray:
    if y.shape[1] == 2:
        return y
    if y.shape[1] == 1:
        return np.repeat(y, 2, axis=1)
    raise CorpusError(f"cannot make stereo from {y.shape[1]} channels")


def _decode(path: Path, sr: int) -> np.ndarray:
    y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    if file_sr != sr:
        y = soxr.resample(y, file_sr, sr, quality="HQ")
    return np.ascontiguousarray(_to_stereo(y), dtype=np.float32)


def _ensure_wav(path: Path, sr: int) -> Path:
    wav = _cached_wav(Path(path), sr)
    if not wav.is_file():
        y = _decode(Path(path), sr)
        wav.parent.mkdir(parents=True, exist_ok=True)
        tmp = wav.with_name(f".{wav.name}.{os.getpid()}.tmp")
        # float32 keeps decoder overshoots above 1.0 instead of clipping them.
        sf.write(str(tmp), y, sr, format="WAV", subtype="FLOAT")
        os.replace(tmp, wav)
    return wav


def load_track(track: Track, sr: int = 44100) -> np.ndarray:
    """Decode a track to stereo float32 at ``sr``, cached as WAV for the next call.

    Parameters
    ----------
    track : Track
        A track from `list_tracks`.
    sr : int
        Output sample rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n, 2), dtype=float32]
        Mono files are duplicated to both channels.
    """
    y, _ = sf.read(str(_ensure_wav(track.path, sr)), dtype="float32", always_2d=True)
    return y


# --------------------------------------------------------------------------------------
# Excerpts


def excerpts(
    tracks: list[Track], n_per_track: int, length_s: float, rng: np.random.Generator
) -> list[Excerpt]:
    """Pick excerpts spread over the whole of each track.

    Each track's possible start times ``[0, duration - length_s]`` are cut into
    ``n_per_track`` equal strata and one start is drawn uniformly inside each, so
    intros, fades and sparse passages are sampled as often as the loud middle.

    Parameters
    ----------
    tracks : list of Track
        Tracks to cut; those shorter than ``length_s`` are skipped.
    n_per_track : int
        Excerpts per track (>= 1).
    length_s : float
        Excerpt length in seconds (> 0).
    rng : np.random.Generator
        Source of the random start times.

    Returns
    -------
    list of Excerpt
        In track order, then time order.

    Examples
    --------
    >>> exs = excerpts(list_tracks(), 4, 10.0, np.random.default_rng(0))
    >>> all(e.length == 10.0 for e in exs)
    True
    """
    if n_per_track < 1:
        raise ValueError(f"n_per_track={n_per_track} must be >= 1")
    if not length_s > 0:
        raise ValueError(f"length_s={length_s} must be > 0")
    out = []
    for track in tracks:
        # Keep a 50 ms margin from the end: durations from headers can be rounded.
        span = track.duration - length_s - 0.05
        if span < 0:
            continue
        width = span / n_per_track
        starts = (np.arange(n_per_track) + rng.random(n_per_track)) * width
        out.extend(Excerpt(track.key, track.path, float(s), float(length_s)) for s in starts)
    return out


def load_excerpt(excerpt: Excerpt, sr: int = 44100) -> np.ndarray:
    """Load an excerpt as stereo float32 at ``sr`` (from the cached WAV).

    Parameters
    ----------
    excerpt : Excerpt
        From `excerpts`.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(round(length * sr), 2), dtype=float32]
        Zero-padded at the end in the rare case the file is a few samples short.
    """
    wav = _ensure_wav(excerpt.path, sr)
    n = int(round(excerpt.length * sr))
    y, _ = sf.read(str(wav), start=int(round(excerpt.start * sr)), frames=n,
                   dtype="float32", always_2d=True)
    if len(y) < n:
        y = np.concatenate([y, np.zeros((n - len(y), y.shape[1]), np.float32)])
    return y


# --------------------------------------------------------------------------------------
# Synthetic speech

# Harvard sentences (IEEE 1969 "Recommended practice for speech quality measurements").
_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
)

_VOICES = ("en", "en-us", "en+f3", "en-us+m3", "en+f4", "en-gb-x-rp")


def _espeak() -> str | None:
    """Path of espeak-ng, installing it with apt-get when running as root."""
    exe = shutil.which("espeak-ng")
    if exe is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "espeak-ng"],
                       capture_output=True, check=False)
        exe = shutil.which("espeak-ng")
    return exe


def speech(
    n: int, rng: np.random.Generator, *, sentences_per_clip: int = 4, sr: int = 44100
) -> list[SpeechClip]:
    """Synthesise ``n`` short English passages with espeak-ng. Synthetic, not human.

    Each passage reads ``sentences_per_clip`` Harvard sentences (about 8 to 15 s)
    with a voice and speaking rate drawn from ``rng``; espeak-ng's 22.05 kHz mono
    output is resampled to ``sr`` and duplicated to stereo.

    Parameters
    ----------
    n : int
        Number of passages.
    rng : np.random.Generator
        Chooses sentences, voices and speaking rates.
    sentences_per_clip : int
        Sentences read in each passage.
    sr : int
        Output sample rate in Hz.

    Returns
    -------
    list of SpeechClip
        Empty (with a warning saying why) if espeak-ng is missing and cannot be
        installed.
    """
    exe = _espeak()
    if exe is None:
        warnings.warn("synthetic speech skipped: espeak-ng is not installed and could not be "
                      "installed (run 'apt-get install espeak-ng' as root)", stacklevel=2)
        return []
    clips = []
    with tempfile.TemporaryDirectory(prefix="nowm-speech-") as tmp:
        for i in range(n):
            picks = rng.choice(len(_SENTENCES), size=sentences_per_clip, replace=False)
            text = " ".join(_SENTENCES[k] for k in picks)
            voice = _VOICES[rng.integers(len(_VOICES))]
            wpm = int(rng.integers(140, 191))
            wav = Path(tmp) / f"{i}.wav"
            result = subprocess.run([exe, "-v", voice, "-s", str(wpm), "-w", str(wav), text],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0 or not wav.is_file():
                raise CorpusError(f"espeak-ng failed for voice {voice!r}: {result.stderr.strip()}")
            clips.append(SpeechClip(text, voice, wpm, _decode(wav, sr), sr))
    return clips


# --------------------------------------------------------------------------------------


def _table(tracks: list[Track]) -> str:
    rows = [("package", "tracks", "minutes", "licence")]
    for package in sorted({t.package for t in tracks}):
        mine = [t for t in tracks if t.package == package]
        licences = ", ".join(sorted({t.licence for t in mine}))
        minutes = sum(t.duration for t in mine) / 60
        rows.append((package, str(len(mine)), f"{minutes:.1f}", licences))
    rows.append(("total", str(len(tracks)), f"{sum(t.duration for t in tracks) / 60:.1f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows
    )


def main() -> int:
    """Fetch the corpus and print one line per package."""
    try:
        tracks = list_tracks()
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    print(f"corpus in {corpus_dir()} (tracks >= 60 s, >= 32 kHz)")
    print(_table(tracks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
