"""False alarms of nowm's detector on unmarked real music (and synthetic speech).

``--clips`` unmarked music clips (default 10,200), split evenly over the clip
lengths (``--lengths``, default 3 s and 10 s) and over every corpus track in
proportion to its duration (at least one clip per track and length), at seeded
offsets spread over each track. A share of the clips first goes through a light
attack (`LIGHT_ATTACKS`: MP3/AAC 128 kbit/s, Opus 64 kbit/s, -10 dB gain) of a
window around the clip, then every clip goes through ``attacks.clip_pipeline``
(mono, 16 kHz, random crop, -23 LUFS) and ``nowm.detect`` at ``--threshold``.
``--speech`` espeak-ng passages (synthetic speech, reported apart) give two 3 s
clips and one 10 s clip each.

Reported: false alarms at the threshold (DESIGN target: none in 10,000+ clips),
the expected number, observed counts at looser thresholds against their
expectation (the calibration check), the smallest false-alarm probability seen,
and a Kolmogorov-Smirnov test of the null false-alarm probabilities against the
uniform distribution per clip length, with a log-scale QQ plot.

Usage::

    python benchmarks/false_alarms.py [--clips 10200] [--speech 200] [--jobs 2]
    python benchmarks/false_alarms.py --quick --source sample --out-dir /tmp/f   # smoke test

Output: ``false_alarms.md``, ``false_alarms.json`` and ``false_alarms.png`` in
``--out-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import _common  # noqa: I001  (limits thread pools before numpy is imported)
from _common import corpus

import numpy as np
import scipy.stats

import attacks
import nowm

#: Light processing applied to a share of the null clips: name -> probability.
LIGHT_ATTACKS = {"none": 0.65, "mp3-128": 0.15, "aac-128": 0.07, "opus-64": 0.08,
                 "gain-10": 0.05}
_MARGIN_S = 0.5  # audio around each clip that goes through the attack
_LOOSE = (1e-1, 1e-2, 1e-3, 1e-4)


# --------------------------------------------------------------------------------------
# Work (worker processes)


def _clip_and_detect(y, sr, clip_s, attack, rng, threshold):
    if attack != "none":
        y, sr = attacks.apply_attack(attack, y, sr, rng)
    clip = attacks.clip_pipeline(y, sr, clip_s, rng)
    d = nowm.detect(clip, 16000, threshold=threshold)
    return [float(d.false_alarm), float(d.score), bool(d.marked), d.reason]


def run_track(job: dict) -> dict:
    """Detect in every planned clip of one track."""
    t0, c0 = time.perf_counter(), time.process_time()
    warnings.simplefilter("ignore")
    t = job["track"]
    track = corpus.Track(Path(t["path"]), t["package"], t["name"], "", t["duration"], 0, 0)
    y = corpus.load_track(track)
    rng = np.random.default_rng([job["seed"], job["index"]])
    records = []
    for clip_s, start, attack in job["clips"]:
        i0 = int(round(start * 44100))
        seg = y[i0: i0 + int(round((clip_s + _MARGIN_S) * 44100))]
        records.append([clip_s, attack, round(start, 2),
                        *_clip_and_detect(seg, 44100, clip_s, attack, rng, job["threshold"])])
    return {"index": job["index"], "track": t["key"], "package": t["package"],
            "records": records, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}


# --------------------------------------------------------------------------------------
# Planning


def allocate(weights: list[float], total: int) -> list[int]:
    """``total`` split in proportion to ``weights``, at least 1 each (largest remainder)."""
    w = np.asarray(weights, float)
    quota = total * w / w.sum()
    alloc = np.maximum(1, np.floor(quota)).astype(int)
    while alloc.sum() < total:
        alloc[int(np.argmax(quota - alloc))] += 1
    return alloc.tolist()


def plan(tracks, args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    names, probs = list(LIGHT_ATTACKS), np.array(list(LIGHT_ATTACKS.values()))
    per_length = math.ceil(args.clips / len(args.lengths))
    jobs = [{"index": i, "track": {"key": t.key, "path": str(t.path), "package": t.package,
                                   "name": t.name, "duration": t.duration},
             "clips": [], "seed": args.seed, "threshold": args.threshold}
            for i, t in enumerate(tracks)]
    for clip_s in args.lengths:
        usable = [i for i, t in enumerate(tracks) if t.duration >= clip_s + _MARGIN_S + 0.1]
        counts = allocate([tracks[i].duration for i in usable], per_length)
        for i, k in zip(usable, counts):
            span = tracks[i].duration - clip_s - _MARGIN_S - 0.05
            starts = (np.arange(k) + rng.random(k)) * span / k  # one per stratum
            kinds = rng.choice(len(names), size=k, p=probs / probs.sum())
            jobs[i]["clips"].extend([clip_s, float(s), names[a]] for s, a in zip(starts, kinds))
    return [j for j in jobs if j["clips"]]


def speech_records(n: int, args) -> tuple[list, str]:
    """Null records of ``n`` espeak-ng passages; also a note on what was run."""
    if n <= 0:
        return [], "not run (--speech 0)"
    rng = np.random.default_rng([args.seed, 999_999])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = corpus.speech(n, rng)
    if not clips:
        return [], "skipped: " + "; ".join(str(w.message) for w in caught)
    names, probs = list(LIGHT_ATTACKS), np.array(list(LIGHT_ATTACKS.values()))
    records = []
    for c in clips:
        dur = len(c.y) / c.sr
        for clip_s in [L for L in args.lengths if L <= 3.0] * 2 + [L for L in args.lengths
                                                                   if L > 3.0]:
            if dur < clip_s:
                continue
            attack = names[int(rng.choice(len(names), p=probs / probs.sum()))]
            records.append([clip_s, attack, 0.0,
                            *_clip_and_detect(c.y, c.sr, clip_s, attack, rng, args.threshold)])
    voices = Counter(c.voice for c in clips)
    return records, (f"{len(clips)} espeak-ng passages (Harvard sentences, voices "
                     f"{', '.join(sorted(voices))}, 140-190 words/min)")


# --------------------------------------------------------------------------------------
# Statistics and reports


def group_stats(records: list, threshold: float) -> dict:
    fa = np.array([r[3] for r in records if r[6] is None], float)
    n_all = len(records)
    out = {"clips": n_all, "evaluated": int(len(fa)),
           "not_evaluated": dict(Counter(r[6] for r in records if r[6] is not None)),
           "false_alarms": int(np.sum(fa <= threshold)), "expected": len(fa) * threshold}
    if len(fa):
        ks = scipy.stats.kstest(fa, "uniform")
        out.update(min_false_alarm=float(fa.min()), max_z=float(max(r[4] for r in records)),
                   ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue),
                   loose={f"{t:g}": [int(np.sum(fa <= t)), len(fa) * t] for t in _LOOSE})
    return out


def write_markdown(path, groups, by_attack, config, info, elapsed, cpu, overlap, speech_note):
    th = config["threshold"]
    lines = [
        "# False alarms on unmarked audio",
        "",
        f"Produced by `{' '.join(['python', 'benchmarks/false_alarms.py', config['argv']]).strip()}`.",
        "",
        *_common.info_lines(info, elapsed),
        f"- Work: {_common.fmt_duration(cpu)} of CPU in the workers (`--jobs {config['jobs']}`).",
        f"- Music: source {config['source']}, {config['tracks']} tracks, unmarked; every track "
        f"gives clips of every length in proportion to its duration, at seeded offsets spread "
        f"over the track (seed {config['seed']}). Light processing before the clip pipeline: "
        + ", ".join(f"{k} {100 * v:g} %" for k, v in LIGHT_ATTACKS.items()) + ".",
        "- Clip pipeline: `attacks.clip_pipeline` (mono, 16 kHz, random crop, -23 LUFS); "
        f"`nowm.detect` at threshold {th:g}.",
        "- Clips of one length overlap where the corpus is shorter than the clips laid end to "
        "end (" + ", ".join(f"{L:g} s clips cover the music {x:.1f} times" for L, x in
                            overlap.items())
        + "): overlapping clips are not independent, which makes the KS p-values somewhat "
        "too small.",
        f"- Speech: {speech_note}; synthetic, not human; reported apart.",
        "",
        f"## At the default threshold ({th:g})",
        "",
        "| audio | clip | clips | false alarms | expected | smallest false-alarm prob. "
        "| max z | KS D | KS p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (kind, L), g in groups.items():
        if not g["evaluated"]:
            lines.append(f"| {kind} | {L:g} s | {g['clips']} | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| {kind} | {L:g} s | {g['evaluated']} | **{g['false_alarms']}** "
            f"| {g['expected']:.4f} | {g['min_false_alarm']:.2e} | {g['max_z']:.2f} "
            f"| {g['ks_statistic']:.4f} | {g['ks_pvalue']:.3g} |")
    music = [g for (k, _), g in groups.items() if k == "music"]
    n_music = sum(g["evaluated"] for g in music)
    fa_music = sum(g["false_alarms"] for g in music)
    verdict = "PASS" if fa_music == 0 and n_music >= 10000 else (
        "FAIL" if fa_music else f"no false alarm, but only {n_music} clips (< 10,000)")
    lines += ["", f"Music, all lengths: **{fa_music} false alarms in {n_music} clips**; "
              f"DESIGN target (none in 10,000+ unmarked clips): {verdict}.", ""]
    skipped = {f"{k} {L:g} s": g["not_evaluated"] for (k, L), g in groups.items()
               if g["not_evaluated"]}
    if skipped:
        lines += [f"Clips with no verdict (not counted above): {skipped}.", ""]
    lines += ["## Calibration: observed against expected at looser thresholds", "",
              "Expected = clips x threshold; the interval is the Poisson 95 % range of the "
              "count if the false-alarm probabilities are calibrated.", "",
              "| audio | clip | " + " | ".join(f"≤ {t:g}" for t in _LOOSE) + " |",
              "|---|---|" + "---|" * len(_LOOSE)]
    for (kind, L), g in groups.items():
        if not g["evaluated"]:
            continue
        cells = []
        for t in _LOOSE:
            k, e = g["loose"][f"{t:g}"]
            lo, hi = scipy.stats.poisson.ppf(0.025, e), scipy.stats.poisson.ppf(0.975, e)
            flag = "" if lo <= k <= hi else " ⚠"
            cells.append(f"{k} (exp. {e:.1f}, {lo:.0f}-{hi:.0f}){flag}")
        lines.append(f"| {kind} | {L:g} s | " + " | ".join(cells) + " |")
    lines += ["", "⚠: outside the 95 % range.", "", "## Music by light attack", "",
              "| attack | clip | clips | false alarms | smallest false-alarm prob. | KS D | KS p |",
              "|---|---|---|---|---|---|---|"]
    for (attack, L), g in sorted(by_attack.items()):
        if g["evaluated"]:
            lines.append(f"| {attack} | {L:g} s | {g['evaluated']} | {g['false_alarms']} "
                         f"| {g['min_false_alarm']:.2e} | {g['ks_statistic']:.4f} "
                         f"| {g['ks_pvalue']:.3g} |")
    lines += ["", "Plot: `false_alarms.png` (sorted false-alarm probabilities against uniform "
              "quantiles, log-log, with the 95 % pointwise band of uniform order statistics)."]
    path.write_text("\n".join(lines) + "\n")


def write_plot(path, grouped_fa: dict, groups: dict, threshold: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({k for k, _ in grouped_fa}, key=lambda k: k != "music")
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        n_max = 0
        for (k, L), fa in sorted(grouped_fa.items()):
            if k != kind or not len(fa):
                continue
            fa = np.sort(fa)
            n = len(fa)
            n_max = max(n_max, n)
            q = (np.arange(1, n + 1) - 0.5) / n
            g = groups[(k, L)]
            ax.loglog(q, np.maximum(fa, 1e-12), ".", ms=2.5,
                      label=f"{L:g} s clips (n={n}): KS D={g['ks_statistic']:.3f}, "
                            f"p={g['ks_pvalue']:.2g}")
        if n_max:
            i = np.unique(np.geomspace(1, n_max, 200).astype(int))
            q = (i - 0.5) / n_max
            lo = scipy.stats.beta.ppf(0.025, i, n_max + 1 - i)
            hi = scipy.stats.beta.ppf(0.975, i, n_max + 1 - i)
            ax.fill_between(q, lo, hi, color="0.85", zorder=0,
                            label=f"95 % band, uniform (n={n_max})")
            lim = 0.5 / n_max
            ax.plot([lim, 1], [lim, 1], "k-", lw=0.8, label="uniform (calibrated)")
        ax.axhline(threshold, color="r", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax.set_xlabel("uniform quantile")
        ax.set_ylabel("reported false-alarm probability")
        ax.set_title(f"{kind}: unmarked clips", fontsize=10)
        ax.set_ylim(min(threshold / 3, 1e-7), 1.5)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, which="major", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------


def parse_args(argv):
    ap = _common.new_parser(__doc__)
    ap.add_argument("--clips", type=int, default=10200, help="music clips in all (default 10200)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[3.0, 10.0])
    ap.add_argument("--tracks", type=int, default=0,
                    help="use a seeded random subset of this many tracks (default 0: all)")
    ap.add_argument("--speech", type=int, default=200, help="espeak-ng passages (0: none)")
    ap.add_argument("--threshold", type=float, default=1e-6)
    _common.add_shared_args(ap, seed=20260302, jobs=2,
                            quick="smoke test: 8 clips from 2 tracks, no speech")
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.speech, args.tracks = 8, 0, 2
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    t_start, info, source, tracks = _common.begin(args)
    if 0 < args.tracks < len(tracks):
        pick = np.random.default_rng([args.seed, 1]).choice(len(tracks), args.tracks,
                                                             replace=False)
        tracks = [tracks[i] for i in sorted(pick)]
    jobs = plan(tracks, args)
    n_clips = sum(len(j["clips"]) for j in jobs)
    print(f"false_alarms: {n_clips} music clips from {len(jobs)} tracks, {args.speech} speech "
          f"passages; {args.jobs} jobs", file=sys.stderr)
    _common.warm_numba()
    progress = _common.Progress(len(jobs), "tracks")
    results = []
    # longest tracks first, so the pool does not end on one long track
    order = sorted(jobs, key=lambda j: -j["track"]["duration"])
    for r in _common.pool_map(run_track, order, args.jobs):
        results.append(r)
        progress.step(f"{r['track']} {len(r['records'])} clips")
    print("false_alarms: speech", file=sys.stderr)
    speech, speech_note = speech_records(args.speech, args)
    elapsed = time.perf_counter() - t_start
    cpu = sum(r["cpu_s"] for r in results)

    grouped = defaultdict(list)
    by_attack = defaultdict(list)
    for r in results:
        for rec in r["records"]:
            grouped[("music", rec[0])].append(rec)
            by_attack[(rec[1], rec[0])].append(rec)
    for rec in speech:
        grouped[("speech", rec[0])].append(rec)
    for L in args.lengths:
        grouped.setdefault(("speech", L), [])
    groups = {k: group_stats(v, args.threshold) for k, v in sorted(
        grouped.items(), key=lambda kv: (kv[0][0] != "music", kv[0][1]))}
    attack_stats = {k: group_stats(v, args.threshold) for k, v in by_attack.items()}
    music_s = sum(t.duration for t in tracks)
    overlap = {L: len(grouped[("music", L)]) * L / music_s for L in args.lengths}
    config = {"argv": " ".join(argv), "source": source, "tracks": len(tracks),
              "seed": args.seed, "threshold": args.threshold, "jobs": args.jobs,
              "clips": args.clips, "lengths": args.lengths, "speech": args.speech}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out_dir / "false_alarms.md", groups, attack_stats, config, info,
                   elapsed, cpu, overlap, speech_note)
    worst = sorted(((rec[3], r["track"], rec[0], rec[1], rec[2]) for r in results
                    for rec in r["records"] if rec[6] is None))[:20]
    _common.write_json_atomic(args.out_dir / "false_alarms.json", {
        "config": config, "run": info, "elapsed_s": round(elapsed, 1),
        "worker_cpu_s": round(cpu, 1), "light_attacks": LIGHT_ATTACKS,
        "groups": [{"audio": k, "clip_s": L, **g} for (k, L), g in groups.items()],
        "by_attack": [{"attack": a, "clip_s": L, **g} for (a, L), g in
                      sorted(attack_stats.items())],
        "smallest": [dict(zip(("false_alarm", "track", "clip_s", "attack", "start"), w))
                     for w in worst],
    })
    fa_arrays = {k: np.array([r[3] for r in v if r[6] is None]) for k, v in grouped.items()}
    write_plot(args.out_dir / "false_alarms.png", fa_arrays, groups, args.threshold)
    total_fa = sum(g["false_alarms"] for g in groups.values())
    print(f"false_alarms: {total_fa} false alarms in "
          f"{sum(g['evaluated'] for g in groups.values())} clips; "
          f"{_common.fmt_duration(elapsed)}; wrote {args.out_dir / 'false_alarms.md'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
