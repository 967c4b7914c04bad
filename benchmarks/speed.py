"""Speed and memory of nowm on real music, against DESIGN.md section 5.

Measured, in this order:

1. ``nowm.embed_file`` on a ``--embed-seconds`` (default 180) 44.1 kHz stereo 16-bit
   WAV cut from a real track, WAV to WAV, in this process (one core: BLAS/numba
   pools are limited to one thread); the first call is excluded (numba compile or
   cache load), then the best of ``--repeats``. Also ``nowm.embed`` on the same
   audio in memory, to separate file I/O from DSP.
2. ``nowm.detect`` on a batch of ``--batch-clips`` 10 s 16 kHz mono clips (half cut
   from the marked file, half from unmarked tracks), sync and speed search
   included; best of ``--repeats`` passes.
3. ``nowm.detect_file`` on the marked file (default early stop, and ``full=True``).
4. Start-up: wall time of ``python -m nowm detect clip.wav`` (and of the ``nowm``
   console script when it is on PATH) on a 10 s 44.1 kHz stereo marked clip, with
   numba's cache warm (one run first), median of ``--startup-runs``.
5. Peak memory (``VmHWM``, the ``ru_maxrss`` of the child's own image) of ``embed_file`` and
   ``detect_file`` on a ``--long-seconds`` (default 7200) WAV made by
   concatenating corpus tracks on disk block by block (never whole in memory),
   against the same on the short file and a child that only imports nowm. The
   long files are deleted afterwards.

"x real time per core" is audio duration over CPU time (``time.process_time``)
of the one process doing the work; wall-clock figures are given beside it, as
the machine may be shared.

Usage::

    python benchmarks/speed.py [--embed-seconds 180] [--long-seconds 7200]
    python benchmarks/speed.py --quick --source sample --out-dir /tmp/s   # smoke test

Output: ``speed.md`` and ``speed.json`` in ``--out-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import _common  # noqa: I001  (limits thread pools before numpy is imported)
from _common import corpus

import numpy as np
import soundfile as sf
import soxr

import nowm

SR = 44100
OWNER = 0x5EED


# --------------------------------------------------------------------------------------
# Test files


def write_concatenation(tracks: list[corpus.Track], seconds: float, path: Path, *,
                        skip_s: float = 0.0, block_s: float = 10.0) -> list[str]:
    """Write ``seconds`` of 44.1 kHz stereo 16-bit WAV to ``path`` by copying tracks one
    after another (looping over ``tracks``) in blocks; return the track keys used."""
    need = int(round(seconds * SR))
    used = []
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=2, subtype="PCM_16",
                      format="WAV") as out:
        i = 0
        while need > 0:
            track = tracks[i % len(tracks)]
            wav = corpus._ensure_wav(track.path, SR)  # the corpus's decoded cache
            start = int(skip_s * SR) if i == 0 else 0
            used.append(track.key)
            for block in sf.blocks(str(wav), blocksize=int(block_s * SR), start=start,
                                   dtype="float32", always_2d=True):
                block = block[:need]
                out.write(np.clip(block, -1.0, 1.0))
                need -= len(block)
                if need <= 0:
                    break
            i += 1
    return used


def pick_track(tracks: list[corpus.Track], seconds: float) -> tuple[corpus.Track, float]:
    """The first track long enough for ``seconds`` after a 10 s intro, else the longest."""
    for t in tracks:
        if t.duration >= seconds + 10.0:
            return t, 10.0
    return max(tracks, key=lambda t: t.duration), 0.0


# --------------------------------------------------------------------------------------
# Timing helpers


def timed(fn, repeats: int) -> dict:
    """Best wall and CPU seconds of ``repeats`` calls of ``fn`` (after one excluded call)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"wall_s": min(walls), "cpu_s": min(cpus), "walls": walls, "cpus": cpus}


def child_env() -> dict:
    """Environment of child processes: this nowm on PYTHONPATH, and Python's bytecode
    cache on (the warm-up run writes nowm's .pyc files, as pip does at install time)."""
    env = dict(os.environ)
    src = str(Path(nowm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall_of(cmd: list[str], runs: int) -> dict:
    """Median wall (and CPU) time of ``runs`` runs of ``cmd`` after one warm-up run."""
    import resource

    env = child_env()
    warm = subprocess.run(cmd, env=env, capture_output=True, text=True)
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return {"median_s": float(np.median(walls)), "median_cpu_s": float(np.median(cpus)),
            "walls": walls, "cpus": cpus, "exit": warm.returncode,
            "stdout": warm.stdout.strip()[:300], "stderr": warm.stderr.strip()[-300:]}


_CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    import nowm
    what, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    # warm the kernels on 3 s of noise first (numba cache load), as the baseline does
    y = (0.1 * np.random.default_rng(0).standard_normal((3 * 16000, 2))).astype("float32")
    nowm.detect(nowm.embed(y, 16000), 16000)
    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    if what == "embed":
        nowm.embed_file(src, dst, owner=%d, force=True)
    elif what == "detect":
        d = nowm.detect_file(src, full=True)
        out.update(marked=bool(d.marked), owner=d.owner)
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
               ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # Linux keeps ru_maxrss across fork + exec (it starts at the parent's peak), so the
    # child's own peak is VmHWM, the high-water mark of this process image.
    try:
        with open("/proc/self/status") as f:
            hwm = [l for l in f if l.startswith("VmHWM:")][0]
        out["maxrss_mb"] = int(hwm.split()[1]) / 1024
    except (OSError, IndexError):
        out["maxrss_mb"] = out["ru_maxrss_mb"]
    print(json.dumps(out))
""" % OWNER)


def child_run(what: str, src: Path | str = "-", dst: Path | str = "-") -> dict:
    r = subprocess.run([sys.executable, "-c", _CHILD, what, str(src), str(dst)],
                       env=child_env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"child {what} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.new_parser(__doc__)
    ap.add_argument("--embed-seconds", type=float, default=180.0)
    ap.add_argument("--batch-clips", type=int, default=200)
    ap.add_argument("--long-seconds", type=float, default=7200.0,
                    help="length of the memory test file (0: skip the memory test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--tmp-dir", type=Path, default=None,
                    help="folder for the test files (default: the system's temp folder)")
    _common.add_shared_args(ap, seed=20260303,
                            quick="smoke test: 12 s file, 4 clips, 20 s long file, 1 run each, "
                                  "fewer child processes")
    args = ap.parse_args(argv)
    if args.quick:
        args.embed_seconds, args.batch_clips, args.long_seconds = 12.0, 4, 20.0
        args.repeats, args.startup_runs = 1, 1
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    t_start, info, source, tracks = _common.begin(args)
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore")
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="nowm-speed-", dir=args.tmp_dir) as tmp:
        tmp = Path(tmp)
        # 1. embed
        track, skip = pick_track(tracks, args.embed_seconds)
        src, dst = tmp / "track.wav", tmp / "track.nowm.wav"
        write_concatenation([track], args.embed_seconds, src, skip_s=skip)
        print(f"speed: embed_file on {args.embed_seconds:g} s of {track.key}", file=sys.stderr)
        res["embed_file"] = timed(lambda: nowm.embed_file(src, dst, owner=OWNER, force=True),
                                  args.repeats)
        y, _ = sf.read(str(src), dtype="float32")
        res["embed_array"] = timed(lambda: nowm.embed(y, SR, owner=OWNER), args.repeats)
        res["embed_file"]["track"] = track.key

        # 2. detect on a batch of 10 s clips
        print("speed: detect on a batch of 10 s clips", file=sys.stderr)
        marked, _ = sf.read(str(dst), dtype="float32")
        marked16 = soxr.resample(marked.mean(axis=1), SR, 16000, quality="HQ")
        n10 = 10 * 16000
        clips = []
        for i in range(args.batch_clips):
            if i % 2 == 0:
                s = int(rng.integers(0, len(marked16) - n10 + 1))
                clips.append(("marked", marked16[s:s + n10].astype(np.float32)))
            else:
                t = tracks[int(rng.integers(len(tracks)))]
                s = float(rng.uniform(0, t.duration - 10.5))
                x = _common.track_window(t, s, 10.25).mean(axis=1)
                clips.append(("unmarked", soxr.resample(x, SR, 16000)[:n10].astype(np.float32)))
        per_kind = {}
        for kind in ("marked", "unmarked"):
            batch = [c for k, c in clips if k == kind]
            per_kind[kind] = timed(lambda b=batch: [nowm.detect(c, 16000) for c in b],
                                   args.repeats)
            per_kind[kind]["clips"] = len(batch)
        found = sum(nowm.detect(c, 16000).marked for k, c in clips if k == "marked")
        res["detect_batch"] = {
            "clips": len(clips), "marked_found": int(found),
            "wall_s": sum(v["wall_s"] for v in per_kind.values()),
            "cpu_s": sum(v["cpu_s"] for v in per_kind.values()), "per_kind": per_kind}

        # 3. detect_file on the marked file
        print("speed: detect_file", file=sys.stderr)
        res["detect_file"] = timed(lambda: nowm.detect_file(dst), args.repeats)
        res["detect_file_full"] = timed(lambda: nowm.detect_file(dst, full=True), args.repeats)
        d = nowm.detect_file(dst, full=True)
        res["detect_file_full"].update(marked=bool(d.marked), owner=d.owner)
        # the unmarked original: no window finds a mark (a marked file's later windows
        # search only the frame grid found; an unmarked one searches the second grid
        # only where the first shows z >= Scheme.sub_grid_gate)
        res["detect_file_full_unmarked"] = timed(lambda: nowm.detect_file(src, full=True),
                                                 args.repeats)

        # 4. start-up
        print("speed: start-up", file=sys.stderr)
        clip = tmp / "clip.wav"
        sf.write(str(clip), marked[: 10 * SR], SR, subtype="PCM_16")
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "python -c 'import nowm.files'": [sys.executable, "-c", "import nowm.files"],
                    "python -m nowm detect clip.wav": [sys.executable, "-m", "nowm", "detect",
                                                       str(clip)]}
        script = shutil.which("nowm")
        if script:
            commands["nowm detect clip.wav"] = [script, "detect", str(clip)]
        if args.quick:
            commands = {k: v for k, v in commands.items() if k.startswith("python -m")}
        res["startup"] = {name: wall_of(cmd, args.startup_runs) for name, cmd in commands.items()}
        if script and "nowm detect clip.wav" in res["startup"]:
            res["startup"]["nowm detect clip.wav"]["script"] = script

        # 5. memory
        if args.long_seconds > 0:
            print("speed: memory (child processes)", file=sys.stderr)
            res["memory"] = {}
            if not args.quick:
                res["memory"] = {
                    "baseline": child_run("baseline"),
                    f"embed_file {args.embed_seconds:g} s": child_run("embed", src, dst),
                    f"detect_file {args.embed_seconds:g} s": child_run("detect", dst)}
            long_src, long_dst = tmp / "long.wav", tmp / "long.nowm.wav"
            print(f"speed: writing a {args.long_seconds:g} s WAV", file=sys.stderr)
            used = write_concatenation(tracks, args.long_seconds, long_src)
            try:
                size_mb = long_src.stat().st_size / 2**20
                print("speed: embed_file / detect_file on it", file=sys.stderr)
                res["memory"][f"embed_file {args.long_seconds:g} s"] = child_run(
                    "embed", long_src, long_dst)
                res["memory"][f"detect_file {args.long_seconds:g} s"] = child_run(
                    "detect", long_dst)
            finally:
                long_src.unlink(missing_ok=True)
                long_dst.unlink(missing_ok=True)
            res["long_file"] = {"seconds": args.long_seconds, "wav_mb": size_mb,
                                "tracks": len(used)}
    elapsed = time.perf_counter() - t_start
    args.out_dir.mkdir(parents=True, exist_ok=True)
    config = {"argv": " ".join(argv), "source": source, "embed_seconds": args.embed_seconds,
              "batch_clips": args.batch_clips, "long_seconds": args.long_seconds,
              "repeats": args.repeats, "startup_runs": args.startup_runs}
    _common.write_json_atomic(args.out_dir / "speed.json",
                              {"config": config, "run": info, "elapsed_s": round(elapsed, 1),
                               "results": res})
    write_markdown(args.out_dir / "speed.md", res, config, info, elapsed)
    print(f"speed: done in {_common.fmt_duration(elapsed)}; wrote {args.out_dir / 'speed.md'}",
          file=sys.stderr)
    return 0


def _x(audio_s: float, t: float) -> str:
    return f"{audio_s / t:,.0f}x" if t > 0 else "n/a"


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def write_markdown(path: Path, res: dict, config: dict, info: dict, elapsed: float) -> None:
    E = config["embed_seconds"]
    ef, ea = res["embed_file"], res["embed_array"]
    db, df, dff = res["detect_batch"], res["detect_file"], res["detect_file_full"]
    clip_audio = 10.0 * db["clips"]
    lines = [
        "# Speed and memory",
        "",
        f"Produced by `{' '.join(['python', 'benchmarks/speed.py', config['argv']]).strip()}`.",
        "",
        *_common.info_lines(info, elapsed),
        "- One process, thread pools limited to one thread (`OMP_NUM_THREADS`, "
        "`NUMBA_NUM_THREADS` = 1). *x real time per core* = audio seconds / CPU seconds of that "
        "process (`time.process_time`); wall-clock figures beside it. Best of "
        f"{config['repeats']} runs after one excluded warm-up call (numba compile or cache load).",
        f"- Source: {config['source']}; embed test file: {E:g} s of `{ef['track']}`, 44.1 kHz "
        "stereo 16-bit WAV.",
        "",
        "| what | x real time per core (CPU) | wall | DESIGN target | |",
        "|---|---|---|---|---|",
        f"| `embed_file`, {E:g} s 44.1 kHz stereo WAV -> WAV | {_x(E, ef['cpu_s'])} "
        f"({ef['cpu_s']:.2f} s) | {_x(E, ef['wall_s'])} ({ef['wall_s']:.2f} s) | ≥ 1000x "
        f"| {_pf(E / ef['cpu_s'] >= 1000)} |",
        f"| `embed` on the same audio in memory (no file I/O) | {_x(E, ea['cpu_s'])} "
        f"({ea['cpu_s']:.2f} s) | {_x(E, ea['wall_s'])} | | |",
        f"| `detect`, batch of {db['clips']} 10 s 16 kHz clips, sync and speed search "
        f"| {_x(clip_audio, db['cpu_s'])} ({1000 * db['cpu_s'] / db['clips']:.1f} ms/clip) "
        f"| {_x(clip_audio, db['wall_s'])} ({1000 * db['wall_s'] / db['clips']:.1f} ms/clip) "
        f"| ≥ 300x | {_pf(clip_audio / db['cpu_s'] >= 300)} |",
    ]
    for kind, v in db["per_kind"].items():
        lines.append(f"| ... {kind} clips only ({v['clips']}) "
                     f"| {_x(10.0 * v['clips'], v['cpu_s'])} "
                     f"({1000 * v['cpu_s'] / v['clips']:.1f} ms/clip) "
                     f"| {_x(10.0 * v['clips'], v['wall_s'])} | | |")
    lines += [
        f"| `detect_file`, {E:g} s marked WAV, default (stops once policy and owner are read) "
        f"| {_x(E, df['cpu_s'])} ({df['cpu_s']:.2f} s) | {_x(E, df['wall_s'])} | | |",
        f"| `detect_file(full=True)`, {E:g} s marked WAV, every window "
        f"| {_x(E, dff['cpu_s'])} ({dff['cpu_s']:.2f} s) | {_x(E, dff['wall_s'])} | ≥ 1000x "
        f"| {_pf(E / dff['cpu_s'] >= 1000)} |",
    ]
    dfu = res.get("detect_file_full_unmarked")
    if dfu:
        lines.append(f"| ... the unmarked original, every window "
                     f"| {_x(E, dfu['cpu_s'])} ({dfu['cpu_s']:.2f} s) | {_x(E, dfu['wall_s'])} "
                     f"| | |")
    mem = res.get("memory", {})
    L = config["long_seconds"]
    long_detect = mem.get(f"detect_file {L:g} s")
    if long_detect:
        lines.append(f"| `detect_file(full=True)`, {L:g} s WAV (child process) "
                     f"| {_x(L, long_detect['cpu_s'])} ({long_detect['cpu_s']:.1f} s) "
                     f"| {_x(L, long_detect['wall_s'])} | ≥ 1000x "
                     f"| {_pf(L / long_detect['cpu_s'] >= 1000)} |")
    long_embed = mem.get(f"embed_file {L:g} s")
    if long_embed:
        lines.append(f"| `embed_file`, {L:g} s WAV (child process) "
                     f"| {_x(L, long_embed['cpu_s'])} ({long_embed['cpu_s']:.1f} s) "
                     f"| {_x(L, long_embed['wall_s'])} | | |")
    lines += ["", f"`detect_file(full=True)` on the {E:g} s file: marked {dff['marked']}, "
              f"owner {dff['owner']}; marked batch clips found: {db['marked_found']} of "
              f"{db['per_kind']['marked']['clips']}.", "",
              "## Start-up (wall, median of "
              f"{config['startup_runs']} runs after a warm-up run; 10 s 44.1 kHz stereo clip)",
              "", "| command | median wall | median CPU | exit | DESIGN target | |",
              "|---|---|---|---|---|---|"]
    for cmd, v in res["startup"].items():
        target = "< 1 s" if "detect" in cmd else ""
        verdict = "" if not target else _pf(v["median_s"] < 1.0)
        lines.append(f"| `{cmd}` | {v['median_s']:.2f} s | {v['median_cpu_s']:.2f} s | {v['exit']} "
                     f"| {target} | {verdict} |")
    lines += ["", "Children run with the thread limits above and Python's bytecode cache on "
              "(`PYTHONDONTWRITEBYTECODE` removed from their environment: the warm-up run writes "
              "nowm's .pyc files, as pip does at install time). The `nowm` command sets numba "
              "up without its BLAS probe (`nowm.cli._start_numba`), which would import "
              "scipy.linalg."]
    script = res["startup"].get("nowm detect clip.wav", {}).get("script")
    if script:
        lines += ["", f"`nowm` is `{script}` on this machine"
                  + (" (a pyenv shim: a bash script that then starts Python, which adds its own "
                     "start-up time)" if "shims" in script else "") + "; children import nowm "
                  f"from `{info['nowm_path']}` (PYTHONPATH)."]
    if mem:
        size = res["long_file"]["wav_mb"]
        lines += ["", "## Peak memory of a child process", "",
                  "Each child imports nowm and runs the kernels once on 3 s of noise (numba "
                  "cache load) before the timed call; *baseline* stops there. Peak RSS is the "
                  "child's `VmHWM` (/proc/self/status): Linux carries `ru_maxrss` over fork + "
                  "exec, so a child's `ru_maxrss` starts at its parent's peak (this script "
                  "holds a few hundred MB of test audio).", "",
                  f"The {L:g} s file is {size:,.0f} MB of 16-bit WAV ({res['long_file']['tracks']}"
                  f" corpus tracks end to end), {size * 2:,.0f} MB as float32.", "",
                  "| child process | peak RSS | wall |", "|---|---|---|"]
        for what, v in mem.items():
            wall = "-" if what == "baseline" else f"{v['wall_s']:.1f} s"
            lines.append(f"| {what} | {v['maxrss_mb']:.0f} MB | {wall} |")
        longm = max(long_embed["maxrss_mb"], long_detect["maxrss_mb"])
        if f"embed_file {E:g} s" in mem:
            short = max(mem[f"embed_file {E:g} s"]["maxrss_mb"],
                        mem[f"detect_file {E:g} s"]["maxrss_mb"])
            lines += ["", f"Bounded (the {L:g} s file needs at most 100 MB more than the "
                      f"{E:g} s file): {_pf(longm <= short + 100)} ({longm:.0f} MB against "
                      f"{short:.0f} MB)."]
        lines += ["", f"Owner read back from the long marked file: {long_detect.get('owner')} "
                  f"(embedded: {OWNER})."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
