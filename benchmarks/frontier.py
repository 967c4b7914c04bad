"""What the missed targets would cost: detection rates against inaudibility, over strength.

The embedding strength scales the whole mark (every tile's modulation depth and
every cap of the masking model), so it trades the detection targets of DESIGN.md
section 5 against the inaudibility targets directly. This script puts side by side

- ``robustness.py`` runs at several strengths (same excerpts, seeds and clip
  pipeline: each attack's randomness depends only on seed, excerpt and attack, so
  the clips differ only in the strength of the mark), and
- a ``quality.py --strength ...`` run (SNR and ViSQOL of 24 excerpts at each
  strength),

and reports, for every rate target that the runs cover, the rate at each strength
and the lowest strength measured that meets it, next to the largest strength the
inaudibility targets allow.

Usage (the runs first, then this script; about 20 minutes on 2 cores)::

    A=clean,mp3-128,mp3-64,aac-128,aac-64,opus-64,opus-32,noise-white-20db,noise-pink-20db,mix-under-6db
    for S in 1.1 1.25 1.5 2 3; do
      PYTHONPATH=$PWD/src python3 benchmarks/robustness.py --jobs 2 --attacks $A --strength $S \\
          --out-dir benchmarks/results/strength/$S
    done
    PYTHONPATH=$PWD/src python3 benchmarks/quality.py --tracks 24 --strength 1,1.1,1.25,1.5,2,3 \\
        --no-plot --mp3-tracks 0
    PYTHONPATH=$PWD/src python3 benchmarks/frontier.py benchmarks/results/robustness.json \\
        benchmarks/results/strength/*/robustness.json --quality benchmarks/results/quality_strength.json

Output: ``frontier.md`` and ``frontier.png`` in ``--out-dir`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import _common  # noqa: I001  (limits thread pools before numpy is imported)

import numpy as np

from robustness import IMPLIED, TARGETS, WRONG_ID_MAX

_LABEL = {"policy": "policy", "owner": "owner id"}


def load_runs(paths) -> dict[float, dict]:
    """Robustness runs by strength (None in a run's config: the default, 1)."""
    runs = {}
    for p in paths:
        d = json.loads(Path(p).read_text())
        s = d["config"].get("strength")
        s = 1.0 if s is None else float(s)
        if s in runs:
            raise SystemExit(f"frontier: two runs at strength {s:g} ({p}); give one")
        runs[s] = d
    if not runs:
        raise SystemExit("frontier: no robustness runs given")
    return dict(sorted(runs.items()))


def rate_table(runs: dict[float, dict]) -> list[dict]:
    """One row per rate target covered by every run: (k, n) per strength."""
    targets = {**TARGETS, **IMPLIED}
    rows = []
    common = None
    for d in runs.values():
        keys = {(c["attack"], float(c["clip_s"])) for c in d["cells"] if c["n"]}
        common = keys if common is None else common & keys
    for (metric, attack, L), target in targets.items():
        if (attack, L) not in common:
            continue
        kn = {}
        for s, d in runs.items():
            c = next(c for c in d["cells"] if c["attack"] == attack and float(c["clip_s"]) == L)
            k = c["policy_detected"] if metric == "policy" else c["owner_correct"]
            kn[s] = (k, c["n"])
        met = [s for s, (k, n) in kn.items() if k / n >= target]
        rows.append(dict(metric=metric, attack=attack, clip_s=L, target=target,
                         implied=(metric, attack, L) in IMPLIED, kn=kn,
                         first_met=min(met) if met else None))
    order = {"policy": 0, "owner": 1}
    rows.sort(key=lambda r: (order[r["metric"]], r["clip_s"], r["attack"]))
    return rows


def quality_table(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    return sorted(json.loads(path.read_text())["summary"], key=lambda r: r["strength"])


def inaudible_limit(quality: list[dict]) -> dict:
    """Largest strength meeting each inaudibility target, interpolated in log strength.

    SNR falls by 20 log10(strength) (the mark scales linearly; the limiter only
    lowers it), so the SNR limits are exact from the default strength's figures;
    the ViSQOL limit interpolates the worst excerpt's delta between measured strengths.
    """
    if not quality:
        return {}
    q1 = min(quality, key=lambda r: abs(r["strength"] - 1.0))
    s1 = q1["strength"]
    lim = {
        "snr_median": s1 * 10 ** ((q1["snr_median"] - 32.0) / 20),
        "snr_min": s1 * 10 ** ((q1["snr_min"] - 28.0) / 20),
    }
    worst = [(r["strength"], r["visqol_delta_worst"]) for r in quality
             if r.get("visqol_delta_worst") is not None]
    lim["visqol"] = None
    for (sa, va), (sb, vb) in zip(worst, worst[1:]):
        if va >= -0.02 > vb:
            t = (va + 0.02) / (va - vb)
            lim["visqol"] = math.exp(math.log(sa) + t * (math.log(sb) - math.log(sa)))
            break
    lim["visqol_text"] = "not measured"
    if lim["visqol"] is not None:
        lim["visqol_text"] = f"{lim['visqol']:.2f}"
    elif worst and worst[-1][1] >= -0.02:  # every strength measured passes: a lower bound
        lim["visqol"] = worst[-1][0]
        lim["visqol_text"] = f"at least {worst[-1][0]:g}"
    elif worst and worst[0][1] < -0.02:  # every strength measured fails: an upper bound
        lim["visqol"] = worst[0][0]
        lim["visqol_text"] = f"below {worst[0][0]:g}"
    lim["all"] = min(lim[k] for k in ("snr_median", "snr_min", "visqol") if lim[k] is not None)
    return lim


def write_markdown(path: Path, runs, rows, quality, lim, argv):
    S = list(runs)
    out = ["# Detection against inaudibility, over strength",
           "",
           "Produced by `python3 benchmarks/frontier.py " + " ".join(argv) + "` from "
           f"{len(runs)} `robustness.py` runs (strengths {', '.join(f'{s:g}' for s in S)}; "
           "the same excerpts, seeds and clip pipeline in every run, so the clips differ only "
           "in the strength of the mark) and `quality.py --strength` (24 excerpts). The commands "
           "are in the script's docstring.",
           ""]
    for s, d in runs.items():
        run = d["config"]["sessions"][0]["run"] if d["config"].get("sessions") else d["run"]
        snr = [e["snr_db"] for e in d["excerpts"]]
        out.append(f"- strength {s:g}: commit `{run['commit']}`, engine `{run['engine_hash']}`, "
                   f"{run['date_utc']}; {d['config']['excerpts']} excerpts, "
                   f"{d['config']['clips']} clips per attack and length; SNR of the marked "
                   f"excerpts median {np.median(snr):.1f} dB, worst {min(snr):.1f} dB")
    out.append("")
    if quality:
        out += ["## Inaudibility (24 excerpts, `quality.py`)", "",
                "| strength | SNR median (dB) | SNR worst (dB) | ViSQOL delta median | "
                "ViSQOL delta worst | excerpts beyond 0.02 |", "|---|---|---|---|---|---|"]
        for r in quality:  # ViSQOL is absent from a quality.py --no-visqol run
            vq = (f"{r['visqol_delta_median']:+.4f} | {r['visqol_delta_worst']:+.4f} | "
                  f"{r['visqol_fails']}" if r.get("visqol_delta_worst") is not None
                  else "not measured | |")
            out.append(f"| {r['strength']:g} | {r['snr_median']:.1f} | {r['snr_min']:.1f} | {vq} |")
        out += ["", "Targets: SNR median >= 32 dB, every excerpt >= 28 dB, ViSQOL within 0.02 of "
                "the original's own score on every excerpt. Largest strength that meets them "
                f"(interpolated): SNR median {lim['snr_median']:.2f}, SNR worst "
                f"{lim['snr_min']:.2f}, ViSQOL {lim['visqol_text']}; all three: "
                f"**{lim['all']:.2f}**.", ""]
    out += ["## Rate targets", "",
            "Rates in % of the clips (480 per cell); a bold rate meets its target. *first met*: "
            "the lowest strength measured at which the target holds.", "",
            "| target | " + " | ".join(f"x{s:g}" for s in S) + " | first met |",
            "|---|" + "---|" * (len(S) + 1)]
    for r in rows:
        cells = []
        for s in S:
            k, n = r["kn"][s]
            v = f"{100 * k / n:.1f}"
            cells.append(f"**{v}**" if k / n >= r["target"] else v)
        name = (f"{_LABEL[r['metric']]} {r['clip_s']:g} s {r['attack']} >= "
                f"{100 * r['target']:g} %" + (" (implied)" if r["implied"] else ""))
        first = "not within x" + f"{S[-1]:g}" if r["first_met"] is None else f"x{r['first_met']:g}"
        out.append(f"| {name} | " + " | ".join(cells) + f" | {first} |")
    wrong = {s: sum(c["owner_wrong"] for c in d["cells"]) for s, d in runs.items()}
    clips = {s: sum(c["n"] for c in d["cells"]) for s, d in runs.items()}
    out += ["", "Wrong owner ids: " + ", ".join(f"x{s:g}: {wrong[s]} in {clips[s]}" for s in S)
            + f" (target: at most {WRONG_ID_MAX:g} per clip).", ""]
    if lim:
        ok = [r for r in rows if r["first_met"] is not None and r["first_met"] <= lim["all"]]
        beyond = [r for r in rows if r not in ok]
        out += ["## Reading", "",
                f"Every target met at a strength the inaudibility targets allow (<= {lim['all']:.2f}): "
                f"{len(ok)} of {len(rows)}. The others need:", ""]
        for r in beyond:
            name = f"{_LABEL[r['metric']]} {r['clip_s']:g} s {r['attack']}"
            if r["first_met"] is None:
                out.append(f"- {name}: more than x{S[-1]:g}")
            else:
                s = r["first_met"]
                q = min(quality, key=lambda x: abs(x["strength"] - s)) if quality else None
                extra = ""
                if q and abs(q["strength"] - s) < 1e-9:
                    vq = q.get("visqol_delta_worst")
                    extra = (f" (there: SNR median {q['snr_median']:.1f} dB"
                             + (f", ViSQOL worst {vq:+.4f})" if vq is not None else ")"))
                out.append(f"- {name}: x{s:g}, {20 * math.log10(s):.1f} dB more mark{extra}")
        out.append("")
    path.write_text("\n".join(out))


def write_plot(path: Path, runs, rows, quality, lim):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    S = np.array(list(runs))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6.4), gridspec_kw=dict(width_ratios=[1.6, 1]))
    missed = [r for r in rows if r["kn"][S[0]][0] / r["kn"][S[0]][1] < r["target"]]
    cmap = plt.get_cmap("tab20")
    for i, r in enumerate(missed):
        y = [100 * r["kn"][s][0] / r["kn"][s][1] for s in S]
        ls = "-" if r["metric"] == "policy" else "--"
        lab = f"{_LABEL[r['metric']]} {r['clip_s']:g} s {r['attack']} (target {100 * r['target']:g})"
        ax.plot(S, y, ls, marker="o", ms=3, color=cmap(i % 20), label=lab)
    if lim:
        ax.axvspan(S[0] * 0.97, lim["all"], color="0.85", zorder=0,
                   label=f"allowed by SNR and ViSQOL (<= x{lim['all']:.2f})")
    ax.axhline(95, color="k", lw=0.6, ls=":")
    ax.axhline(99, color="k", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(S, [f"{s:g}" for s in S])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("strength (x default)")
    ax.set_ylabel("% of clips")
    ax.set_title("targets missed at the default strength")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2)
    ax.grid(alpha=0.3)
    if quality:
        qs = np.array([r["strength"] for r in quality])
        bx.plot(qs, [r["snr_median"] for r in quality], "o-", label="SNR median (>= 32)")
        bx.plot(qs, [r["snr_min"] for r in quality], "s-", label="SNR worst (>= 28)")
        bx.axhline(32, color="C0", lw=0.6, ls=":")
        bx.axhline(28, color="C1", lw=0.6, ls=":")
        bx.set_ylabel("SNR (dB)")
        bx.set_xscale("log")
        bx.set_xticks(qs, [f"{s:g}" for s in qs])
        bx.xaxis.set_minor_formatter(NullFormatter())
        bx.set_xlabel("strength (x default)")
        h1, l1 = bx.get_legend_handles_labels()
        h2, l2 = [], []
        if all(r.get("visqol_delta_worst") is not None for r in quality):
            cx = bx.twinx()
            cx.plot(qs, [-r["visqol_delta_worst"] for r in quality], "^-", color="C3",
                    label="ViSQOL penalty, worst excerpt (<= 0.02)")
            cx.axhline(0.02, color="C3", lw=0.6, ls=":")
            cx.set_ylabel("ViSQOL penalty (own - marked)")
            h2, l2 = cx.get_legend_handles_labels()
        bx.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
        bx.set_title("inaudibility (24 excerpts)")
        bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="robustness.json of each strength")
    ap.add_argument("--quality", type=Path, default=None,
                    help="quality.py --strength output (quality_strength.json)")
    ap.add_argument("--out-dir", type=Path, default=_common.RESULTS)
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.runs + ([args.quality] if args.quality else []) if not p.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}; run robustness.py / quality.py first "
                 "(commands in this script's docstring)")
    runs = load_runs(args.runs)
    rows = rate_table(runs)
    quality = quality_table(args.quality)
    lim = inaudible_limit(quality)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out_dir / "frontier.md", runs, rows, quality, lim, argv)
    write_plot(args.out_dir / "frontier.png", runs, rows, quality, lim)
    print(f"frontier: {len(rows)} targets over {len(runs)} strengths; wrote "
          f"{args.out_dir / 'frontier.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
