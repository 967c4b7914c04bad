"""Fit the detector's effective number of independent hypotheses on unmarked music.

The detector's maximum statistic over its whole search (offsets, band shifts,
tempo factors, policies) is compared with ``1 - (1 - Q(z)) ** n_eff``. Under that
model ``-n_eff * log(1 - Q(z_max))`` is exponential with mean 1, so the maximum
likelihood estimate is ``n_eff = N / sum(-log(1 - Q(z_i)))``. The value goes into
``Scheme.effective_tests``, and the same fit of the nominal search's maximum (tempo 1,
no band shift) into ``Scheme.nominal_tests``; ``benchmarks/false_alarms.py`` then checks on other
clips that the reported false-alarm probabilities are uniform.

Usage::

    python benchmarks/calibrate.py [--per-track 4] [--seed 1] [--out benchmarks/results/calibration.txt]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import scipy.special
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attacks  # noqa: E402
import corpus  # noqa: E402

from nowm._scheme import SCHEME  # noqa: E402
from nowm.detection import detect_16k  # noqa: E402


def null_scores(tracks, per_track, lengths, rng, scheme):
    """Maximum statistic of unmarked clips: list of (track, length, z)."""
    out = []
    for clip_s in lengths:
        for ex in corpus.excerpts(tracks, per_track, clip_s + 0.5, rng):
            y = corpus.load_excerpt(ex)
            clip = attacks.clip_pipeline(y, 44100, clip_s, rng)
            det = detect_16k(clip.astype(np.float64), scheme=scheme)
            if det.reason is None:
                out.append((ex.track, clip_s, det.score, det.nominal_score))
    return out


def fit(z):
    q = 0.5 * scipy.special.erfc(np.asarray(z) / np.sqrt(2))
    return len(z) / np.sum(-np.log1p(-q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-track", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "calibration.txt"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    tracks = corpus.list_tracks()
    scheme = dataclasses.replace(SCHEME, effective_tests=(), nominal_tests=())
    t0 = time.time()
    lengths = (1.5, 3.0, 5.0, 10.0, 20.0, 30.0)
    rows = null_scores(tracks, args.per_track, lengths, rng, scheme)
    lines = ["# calibration of Scheme.effective_tests and nominal_tests on unmarked real music",
             f"# {len(tracks)} tracks, {args.per_track} clips per track and length, seed {args.seed}, "
             f"{time.time() - t0:.0f} s", f"# hypotheses searched: {scheme.n_hypotheses}"]
    for name, col in (("effective_tests", 2), ("nominal_tests", 3)):
        lines.append(f"# {name}: " + ("the whole search" if col == 2 else
                                      "the nominal search alone (tempo 1, no band shift)"))
        table = []
        for clip_s in lengths:
            z = np.array([r[col] for r in rows if r[1] == clip_s])
            n_eff = fit(z)
            table.append((clip_s, round(float(n_eff))))
            fa = -np.expm1(n_eff * np.log1p(-0.5 * scipy.special.erfc(z / np.sqrt(2))))
            ks = scipy.stats.kstest(fa, "uniform")
            lines.append(f"{clip_s:5g} s: clips {len(z):5d}  z max {z.max():.2f}  median "
                         f"{np.median(z):.2f}  n_eff {n_eff:10.1f}  KS p (own fit) {ks.pvalue:.3f}")
        lines.append(f"{name} = {tuple(table)!r}")
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
