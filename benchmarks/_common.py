"""Shared plumbing of nowm's benchmark scripts (not a benchmark itself).

- Music sources: the real-music corpus (`corpus.py`) or, where the corpus is not
  downloaded (CI), the real-music sample shipped in ``samples/`` (30 s), so every
  script runs anywhere with tiny parameters.
- Statistics: Wilson score intervals for rates.
- Provenance: git commit, a hash of the installed engine's source, versions, and
  the machine's load, written into every result file.
- Progress lines with an estimate of the time left.

Importing this module limits BLAS/OpenMP pools to one thread (unless already set),
so that ``--jobs N`` processes use N cores and speeds are per core.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SAMPLE = REPO / "samples" / "orbital-elevator-excerpt.flac"

if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import corpus  # noqa: E402


# --------------------------------------------------------------------------------------
# Music sources


def corpus_cached() -> bool:
    """True if every corpus package is downloaded and unpacked (no network needed)."""
    root = corpus.corpus_dir()
    for package in corpus.PACKAGES:
        debs = sorted((root / "debs").glob(f"{package}_*.deb"))
        if not debs or not (root / "raw" / debs[-1].stem).is_dir():
            return False
    return True


def sample_tracks() -> list[corpus.Track]:
    """The shipped 30 s real-music sample as a one-track corpus.

    Its decoded WAV is cached like corpus tracks (under ``$NOWM_CORPUS_DIR``).
    """
    import soundfile as sf

    info = sf.info(str(SAMPLE))
    return [corpus.Track(SAMPLE, "samples", SAMPLE.stem, "CC-BY-SA-3.0", info.duration,
                         info.samplerate, info.channels, "Max McCracken")]


def new_parser(doc: str) -> argparse.ArgumentParser:
    """Argument parser of a benchmark script, described by its docstring's first line."""
    return argparse.ArgumentParser(description=doc.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_shared_args(parser: argparse.ArgumentParser, *, seed: int, quick: str,
                    jobs: int | None = None) -> None:
    """The options every full benchmark takes: ``--seed``, ``--jobs`` (when it runs
    worker processes), ``--out-dir``, ``--quick`` (described by ``quick``) and ``--source``."""
    parser.add_argument("--seed", type=int, default=seed)
    if jobs is not None:
        parser.add_argument("--jobs", type=int, default=jobs,
                            help=f"worker processes (default {jobs})")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help=quick)
    add_source_args(parser)


def begin(args) -> tuple[float, dict, str, list]:
    """Start of a run: ``(perf_counter at start, run_info(), source, tracks)``."""
    t_start = time.perf_counter()
    return (t_start, run_info()) + music_tracks(args.source)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", choices=("corpus", "sample", "auto"), default="corpus",
        help="music to use: the real-music corpus (fetched into ~/.cache/nowm-corpus if "
             "needed), the 30 s sample in samples/ (for smoke tests), or auto (the corpus "
             "if it is already cached, else the sample); default corpus")


def music_tracks(source: str, min_duration: float = 60.0) -> tuple[str, list[corpus.Track]]:
    """(resolved source name, tracks) for ``--source``."""
    if source == "auto":
        source = "corpus" if corpus_cached() else "sample"
    if source == "sample":
        return source, sample_tracks()
    return source, corpus.list_tracks(min_duration)


def track_window(track: corpus.Track, start: float, length: float, sr: int = 44100) -> np.ndarray:
    """``length`` seconds of ``track`` from ``start`` (stereo float32 at ``sr``)."""
    return corpus.load_excerpt(corpus.Excerpt(track.key, track.path, start, length), sr)


# --------------------------------------------------------------------------------------
# Statistics


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a binomial rate ``k / n``."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def fmt_rate(k: int, n: int, digits: int = 1) -> str:
    """``'98.5 % [96.1, 99.4]'``: percentage with its Wilson 95 % interval."""
    if n == 0:
        return "n/a"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.{digits}f} % [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


# --------------------------------------------------------------------------------------
# Provenance


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def engine_hash() -> str:
    """Short hash of the source of the ``nowm`` package actually imported."""
    import nowm

    h = hashlib.sha256()
    root = Path(nowm.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def run_info() -> dict:
    """Where and on what a benchmark ran: commit, engine hash, versions, machine load."""
    import numba
    import nowm

    commit = _git("rev-parse", "--short=10", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "src"))
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "commit": commit + ("+dirty-src" if dirty else ""),
        "engine_hash": engine_hash(),
        "nowm_path": str(Path(nowm.__file__).resolve().parent),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}",
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def info_lines(info: dict, elapsed_s: float | None = None) -> list[str]:
    """Markdown bullet lines describing a run."""
    lines = [
        f"- Measured on commit `{info['commit']}` (engine source hash `{info['engine_hash']}`), "
        f"{info['date_utc']}.",
        f"- Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}; "
        f"{info['machine']}.",
        f"- The machine was shared with other jobs (load average at start "
        f"{', '.join(str(x) for x in info['load_average_at_start'])}): wall times are "
        f"pessimistic.",
    ]
    if elapsed_s is not None:
        lines.append(f"- Whole run: {fmt_duration(elapsed_s)} wall.")
    return lines


def fmt_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    """Folder for resumable partial results: ``$NOWM_BENCH_CACHE`` or ~/.cache/nowm-bench."""
    return Path(os.environ.get("NOWM_BENCH_CACHE") or "~/.cache/nowm-bench").expanduser()


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# Process pools and progress


def warm_numba() -> None:
    """Compile (or load from numba's cache) every kernel once, before forking workers."""
    import warnings

    import nowm

    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal((3 * 16000, 2))).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nowm.detect(nowm.embed(y, 16000, owner=1), 16000)


def pool_map(fn, jobs: list, n_jobs: int):
    """Yield ``fn(job)`` results as they finish: inline for ``n_jobs <= 1``, else
    in a fork pool (numba already warm in the parent)."""
    if n_jobs <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(min(n_jobs, len(jobs)), maxtasksperchild=8) as pool:
        yield from pool.imap_unordered(fn, jobs)


class Progress:
    """Print ``[k/n] label, elapsed, ETA`` lines to stderr."""

    def __init__(self, total: int, what: str):
        self.total, self.what, self.done = total, what, 0
        self.t0 = time.perf_counter()

    def step(self, label: str = "", count: int = 1) -> None:
        self.done += count
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else float("nan")
        print(f"[{self.done}/{self.total} {self.what}] {label}  elapsed {fmt_duration(el)}, "
              f"left ~{fmt_duration(eta)}", file=sys.stderr, flush=True)
