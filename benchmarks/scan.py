"""Scanning speed: x real time per core for 10 s clips of real music, decoding included.

Cuts 10 s excerpts from the corpus's real music (``benchmarks/corpus.py``), marks
half of them at the default strength, writes each set as WAV (16-bit), FLAC and
MP3 (44.1 kHz stereo), then times ``nowm.scan`` over each folder with 1 and 2
worker processes, and ``nowm.ray.scan`` on a local ``ray.init(num_cpus=2)``.
Metadata reading is on (the default). "x real time per core" is seconds of audio
checked per second of wall time, divided by the number of workers.

Usage::

    python benchmarks/scan.py [--clips 32] [--no-ray] [--out benchmarks/results/scan.txt]

The machine's load average is printed with the figures: on a shared machine they
are lower bounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import corpus  # noqa: E402

import nowm  # noqa: E402
import nowm.ingest  # noqa: E402

SR = 44100
CLIP_S = 10.0
FORMATS = (("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("mp3", "MP3", "MPEG_LAYER_III"))


def _load():
    return os.getloadavg()[0]


def make_clips(n: int, rng, tracks=None) -> list:
    tracks = corpus.list_tracks() if tracks is None else tracks
    per = 2 if len(tracks) > 1 else n
    pick = rng.choice(len(tracks), min(len(tracks), -(-n // per)), replace=False)
    exs = corpus.excerpts([tracks[i] for i in pick], per, CLIP_S, rng)[:n]
    clips = [corpus.load_excerpt(e, SR) for e in exs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        return [(nowm.embed(y, SR) if i % 2 == 0 else y, i % 2 == 0) for i, y in enumerate(clips)]


def write_sets(clips, root: Path) -> dict:
    out = {}
    for ext, fmt, subtype in FORMATS:
        d = root / ext
        d.mkdir()
        for i, (y, _) in enumerate(clips):
            sf.write(d / f"clip{i:03d}.{ext}", y, SR, format=fmt, subtype=subtype)
        out[ext] = d
    return out


def timed_scan(folder, jobs, repeats=2):
    """Best wall time, CPU time of this process in that run, and the records."""
    best, recs = None, None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        recs = list(nowm.scan([folder], jobs=jobs))
        dt, dc = time.perf_counter() - t, time.process_time() - c
        if best is None or dt < best[0]:
            best = (dt, dc)
    return best[0], best[1], recs


def _burn(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def control_speedup(n=4_000_000) -> float:
    """Speed-up of 2 processes over 1 on pure Python arithmetic: what the machine
    gives a second worker at all (1.0 when the other load takes the second core)."""
    import multiprocessing as mp

    t = time.perf_counter()
    _burn(n)
    _burn(n)
    t1 = time.perf_counter() - t
    with mp.get_context("fork").Pool(2) as pool:
        t = time.perf_counter()
        pool.map(_burn, [n, n])
        t2 = time.perf_counter() - t
    return t1 / t2


def decode_only(folder):
    t = time.perf_counter()
    for p in sorted(folder.iterdir()):
        sf.read(p, dtype="float64", always_2d=True)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--no-ray", action="store_true")
    _common.add_source_args(ap)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2026)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    _, tracks = _common.music_tracks(args.source, CLIP_S + 1)
    clips = make_clips(args.clips, rng, tracks)
    audio_s = len(clips) * CLIP_S
    nowm.ingest.warm()
    load0 = _load()
    say(f"nowm scan speed: {len(clips)} clips of {CLIP_S:.0f} s real music (corpus.py), half marked, "
        f"44.1 kHz stereo; {os.cpu_count()} cores; load average {load0:.1f} at start")
    say(f"{'format':6s} {'decode only':>12s} {'1 job':>16s} {'1 job, CPU':>11s} {'2 jobs':>16s} "
        f"{'speed-up':>9s} {'detected':>9s} {'false +':>8s}")
    with tempfile.TemporaryDirectory(prefix="nowm-scan-bench-") as tmp:
        sets = write_sets(clips, Path(tmp))
        for ext, folder in sets.items():
            dec = decode_only(folder)
            t1, c1, recs = timed_scan(folder, 1)
            t2, _, recs2 = timed_scan(folder, 2)
            assert recs == recs2
            marked = [m for _, m in clips]
            hit = sum(r["status"] == "reserved-watermark" for r, m in zip(recs, marked) if m)
            fp = sum(r["marked"] for r, m in zip(recs, marked) if not m)
            say(f"{ext:6s} {audio_s / dec:10.0f}x {1000 * t1 / len(clips):6.1f} ms {audio_s / t1:5.0f}x "
                f"{audio_s / c1:10.0f}x {1000 * t2 / len(clips):6.1f} ms {audio_s / t2 / 2:5.0f}x "
                f"{t1 / t2:8.2f}x "
                f"{hit:4d}/{sum(marked):<4d} {fp:4d}/{len(clips) - sum(marked)}")
        say(f"control: 2 processes of pure Python arithmetic run {control_speedup():.2f}x as fast "
            "as 1 on this machine now (2.0 on 2 free cores)")
        say("(ms per clip of wall time; 'Nx' = x real time per core; 1 job, CPU: audio seconds per "
            "CPU second of the scanning process, less sensitive to other load; 2 jobs: per core, "
            "i.e. total / 2; decode only: soundfile to float64, one process)")
        if not args.no_ray:
            say(ray_figures(sets, audio_s, len(clips)))
    say(f"load average {_load():.1f} at the end (2 cores shared with other work: "
        "figures are lower bounds)")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


def ray_figures(sets, audio_s, n) -> str:
    try:
        import ray

        import nowm.ray as nowm_ray
    except ImportError:
        return "ray: not installed (pip install 'nowm[ray]')"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    out = []
    try:
        for ext in ("flac",):
            times = []
            for _ in range(2):
                t = time.perf_counter()
                recs = nowm_ray.records(nowm_ray.scan([sets[ext]]))
                times.append(time.perf_counter() - t)
            assert len(recs) == n
            local = sorted(nowm.scan([sets[ext]]), key=lambda r: r["path"])
            same = recs == local
            out.append(f"ray   {ext}: ray.init(num_cpus=2), read_binary_files + map_batches: "
                       f"first run {times[0]:.1f} s ({audio_s / times[0] / 2:.0f}x per core, actor start "
                       f"and numba load included), second {times[1]:.1f} s "
                       f"({audio_s / times[1] / 2:.0f}x per core); records identical to local: {same}")
            files = sorted(str(p) for p in sets[ext].iterdir()) * 8
            t = time.perf_counter()
            n8 = nowm_ray.scan(files).count()
            t8 = time.perf_counter() - t
            out.append(f"ray   {ext}: the same files 8 times over ({n8} items, {8 * audio_s:.0f} s of "
                       f"audio) in one dataset: {t8:.1f} s ({8 * audio_s / t8 / 2:.0f}x per core)")
    finally:
        ray.shutdown()
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
