"""Catalog marking speed: files/s and x real time of `nowm batch` with 1 and 2 jobs.

Builds a catalog of real music (excerpts of the corpus's tracks, see ``corpus.py``)
in a mix of formats, then marks it with :func:`nowm.mark_catalog` once per job
count, each run in a fresh process so that memory figures are its own. A run
includes everything a batch does per file: hashing, detecting the input (already
marked?), embedding, writing tags, detecting the output (verification), hashing
the output and the manifest; with 2 jobs also the parent's numba warm-up.

The corpus has 108 tracks, fewer than 200, so the catalog is made of excerpts:
``--files`` of ``--seconds`` each (default 200 x 45 s, two per track, spread over
each track), written as FLAC, WAV, MP3, M4A (AAC) and Ogg Vorbis in turn.

    python3 benchmarks/catalog.py                 # writes benchmarks/results/catalog.txt
    python3 benchmarks/catalog.py --files 40 --seconds 30 --out /tmp/quick.txt

Peak memory per worker is the largest resident set a marking process reached
(``ru_maxrss`` measured inside each worker; with 1 job, the one process). Forked
workers share the parent's pages copy-on-write, and RSS counts those too, so the
figure is an upper bound on what each worker adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

FORMATS = [  # (suffix, libsndfile format, subtype) ; m4a goes through PyAV
    (".flac", "FLAC", "PCM_16"),
    (".wav", "WAV", "PCM_16"),
    (".mp3", "MP3", "MPEG_LAYER_III"),
    (".m4a", None, None),
    (".ogg", "OGG", "VORBIS"),
]


def _write_m4a(path, y, sr, bit_rate=192000):
    """AAC in an M4A (``ipod``) container, with the encoder of ``attacks.py``."""
    import attacks

    Path(path).write_bytes(attacks._av_encode(np.asarray(y, np.float32), sr, attacks._encoder("aac"),
                                              "ipod", bit_rate))


def build_catalog(root: Path, n_files: int, seconds: float, seed: int = 5, source: str = "corpus") -> dict:
    """Write ``n_files`` excerpts under ``root`` (one folder per package); return stats."""
    import _common
    import corpus

    _, tracks = _common.music_tracks(source, seconds + 1)
    per_track = -(-n_files // len(tracks))
    exs = corpus.excerpts(tracks, per_track, seconds, np.random.default_rng(seed))
    # spread over tracks: first excerpt of every track, then the second ones, ...
    exs = sorted(exs, key=lambda e: (exs.index(e) % per_track, exs.index(e)))[:n_files]
    t0 = time.perf_counter()
    for i, ex in enumerate(exs):
        suffix, fmt, subtype = FORMATS[i % len(FORMATS)]
        package, name = ex.track.split("/", 1) if "/" in ex.track else ("music", ex.track)
        path = root / package / f"{i:03d}-{Path(name).stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        y = corpus.load_excerpt(ex, 44100)
        if fmt is None:
            _write_m4a(path, y, 44100)
        else:
            sf.write(str(path), y, 44100, format=fmt, subtype=subtype)
    return {"files": len(exs), "tracks": len({e.track for e in exs}), "seconds_each": seconds,
            "audio_seconds": len(exs) * seconds, "build_s": time.perf_counter() - t0,
            "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file())}


def _engine(jobs: str) -> tuple:
    """``"2"`` -> ("local", 2); ``"ray:2"`` -> ("ray", 2): a local Ray with 2 CPUs."""
    if jobs.startswith("ray"):
        return "ray", int(jobs.partition(":")[2] or os.cpu_count() or 1)
    return "local", int(jobs)


def run_once(src: str, out: str, manifest: str, jobs: str) -> dict:
    """One batch in this process; prints a JSON line (used with --run)."""
    import nowm

    engine, n = _engine(jobs)
    t0 = time.perf_counter()
    if engine == "ray":
        import ray

        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        t0 = time.perf_counter()  # Ray's own start-up is not the batch's
    report = nowm.mark_catalog(src, out, jobs=n, manifest=manifest, engine=engine)
    wall = time.perf_counter() - t0
    by_fmt: dict = {}
    for f in report.files:
        d = by_fmt.setdefault(Path(f.rel).suffix, {"n": 0, "seconds": 0.0, "audio": 0.0})
        d["n"] += 1
        d["seconds"] += f.seconds
        d["audio"] += f.duration or 0.0
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"jobs": jobs if engine == "ray" else n, "wall_s": wall, "counts": report.counts, "audio_s": report.audio_seconds,
            "peak_worker_rss": report.peak_worker_rss if (n > 1 or engine == "ray") else self_rss,
            "parent_rss": self_rss,
            "children_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "by_format": by_fmt, "failed": [(f.rel, f.reason) for f in report.failed]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--jobs", nargs="+", default=["1", "2"],
                    help="runs to make: a number of worker processes, or ray:N (a local Ray "
                         "with N CPUs, nowm batch --engine ray)")
    ap.add_argument("--out", default=str(HERE / "results" / "catalog.txt"))
    import _common

    _common.add_source_args(ap)
    ap.add_argument("--workdir", help="keep the catalog here (default: a temporary folder, removed)")
    ap.add_argument("--run", nargs=4, metavar=("SRC", "OUT", "MANIFEST", "JOBS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        src, out, manifest, jobs = args.run
        print(json.dumps(run_once(src, out, manifest, jobs)))
        return 0

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="nowm-catalog-"))
    try:
        src = work / "catalog"
        if not src.exists():
            print(f"building {args.files} excerpts of {args.seconds:.0f} s in {src} ...", flush=True)
            stats = build_catalog(src, args.files, args.seconds, source=args.source)
        else:
            files = [p for p in src.rglob("*") if p.is_file()]
            stats = {"files": len(files), "seconds_each": args.seconds, "audio_seconds": len(files) * args.seconds,
                     "bytes": sum(p.stat().st_size for p in files), "tracks": None, "build_s": 0.0}
        # numba's on-disk cache warm for every run, as for a user's second command
        subprocess.run([sys.executable, "-c", "import nowm.batch as b; b._warm(None)"], check=True,
                       env=dict(os.environ, PYTHONPATH=str(HERE.parent / "src")))
        runs = []
        load_start = os.getloadavg()
        for jobs in args.jobs:
            out = work / f"marked-{jobs.replace(':', '-')}"
            shutil.rmtree(out, ignore_errors=True)
            manifest = work / f"manifest-{jobs.replace(':', '-')}.sqlite"
            manifest.unlink(missing_ok=True)
            print(f"marking with {jobs} job(s) ...", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--run", str(src), str(out), str(manifest), str(jobs)],
                                  capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(HERE.parent / "src")))
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            shutil.rmtree(out, ignore_errors=True)
        text = _table(stats, runs, load_start)
        print(text)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _table(stats: dict, runs: list, load_start=(0.0, 0.0, 0.0)) -> str:
    load = os.getloadavg()
    # the load at the end includes this benchmark's own last run: judge by the start
    busy = load_start[0] > 0.5 * (os.cpu_count() or 1)
    lines = [
        "nowm batch: catalog marking speed (benchmarks/catalog.py)",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average at the start {load_start[0]:.1f}, at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        ("MEASURED UNDER LOAD: the machine was shared with other jobs; treat speeds as lower bounds."
         if busy else "The machine was otherwise idle at the start (load average at most half the CPUs)."),
        f"catalog: {stats['files']} excerpts of {stats['seconds_each']:.0f} s of real music "
        f"({stats.get('tracks') or '?'} corpus tracks; the corpus has fewer than 200 tracks), "
        f"{stats['audio_seconds'] / 3600:.2f} h of audio, {stats['bytes'] / 1e6:.0f} MB, "
        "44.1 kHz stereo as FLAC 16-bit, WAV 16-bit, MP3, M4A (AAC 192k) and Ogg Vorbis in turn",
        "per file: sha256 in, detect input, embed, write tags, detect output (verify), sha256 out, manifest",
        "",
        f"{'jobs':>7} {'wall s':>8} {'files/s':>8} {'x real time':>12} {'peak RSS/worker MB':>19}  outcome",
    ]
    for r in runs:
        n = sum(r["counts"].get(s, 0) for s in ("marked", "already-marked"))
        lines.append(f"{str(r['jobs']):>7} {r['wall_s']:>8.1f} {n / r['wall_s']:>8.2f} "
                     f"{r['audio_s'] / r['wall_s']:>12.0f} {r['peak_worker_rss'] / 1e6:>19.0f}  "
                     + ", ".join(f"{v} {k}" for k, v in sorted(r["counts"].items())))
    lines += ["", "seconds per file and x real time within a worker, by format (jobs = 1):"]
    first = runs[0]
    for fmt, d in sorted(first["by_format"].items()):
        lines.append(f"  {fmt:6} {d['n']:4d} files  {d['seconds'] / max(d['n'], 1):6.2f} s/file  "
                     f"{d['audio'] / max(d['seconds'], 1e-9):6.0f}x")
    for r in runs:
        for rel, why in r["failed"][:10]:
            lines.append(f"  failed (jobs={r['jobs']}): {rel}: {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
