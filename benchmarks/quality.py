"""Inaudibility benchmark: SNR and ViSQOL (audio mode) of marked real music.

For each excerpt of a corpus track (``benchmarks/corpus.py``), marked with
`nowm.embed` at 44.1 kHz stereo:

- **SNR** of the marked excerpt against the original (all channels, whole excerpt), and
  the *in-band* SNR counting only 500 Hz to 7 kHz, where the watermark lives (the
  broadband figure credits bass that carries no mark; the in-band one tracks the ViSQOL
  penalty far better, so it is a quick proxy while tuning);
- **ViSQOL v3, audio mode** of original vs marked, next to the original's *own* score
  (original vs itself: identical files score about 4.73, not 5), and the difference;
- as a sanity anchor on a few excerpts, original vs an MP3 128 kbit/s round trip
  (DESIGN §5 expects about 4.2).

Targets (DESIGN §5): SNR median >= 32 dB and no excerpt below 28 dB; ViSQOL of the
marked excerpt within 0.02 of the original's own score on every excerpt.

ViSQOL comes from the PyPI package ``audio-samples-qoe`` 0.1.2, whose dependency has
wheels for Python 3.12 only, so it runs in a separate Python 3.12 environment through
``_visqol_worker.py`` (two worker processes by default). Everything else runs here, in
the project's own environment. Set-up, once::

    ~/.pyenv/versions/3.12.1/bin/python -m venv ~/.venvs/visqol
    ~/.venvs/visqol/bin/pip install audio-samples-qoe==0.1.2

Run (from the repository root)::

    PYTHONPATH=$PWD/src python3 benchmarks/quality.py                 # 24 x 30 s, default strength
    PYTHONPATH=$PWD/src python3 benchmarks/quality.py --tracks 8 --strength 0.5,1,1.5,2 --no-plot
    PYTHONPATH=$PWD/src python3 benchmarks/quality.py --input my.flac --no-visqol

Writes ``benchmarks/results/quality.md`` and ``quality.json`` (``quality_strength.*``
when several strengths are given) and ``residual.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # corpus.py and attacks.py live beside this file
    sys.path.insert(0, str(HERE))

WORKER = HERE / "_visqol_worker.py"
RESULTS = HERE / "results"
SR = 44100  # marking rate: the corpus is decoded to 44.1 kHz stereo
VISQOL_SR = 48000  # ViSQOL audio mode's rate; we resample with soxr ourselves
VISQOL_ENV = "NOWM_VISQOL_PYTHON"
VISQOL_DEFAULT = Path("~/.venvs/visqol/bin/python").expanduser()
VISQOL_SETUP = ("~/.pyenv/versions/3.12.1/bin/python -m venv ~/.venvs/visqol && "
                "~/.venvs/visqol/bin/pip install audio-samples-qoe==0.1.2")

TARGET_SNR_MEDIAN = 32.0
TARGET_SNR_MIN = 28.0
TARGET_VISQOL_DELTA = 0.02
BAND_HZ = (500.0, 7000.0)  # where the watermark lives (semitone bands from 500 Hz)
QUIET_EVERY = 4  # every 4th track contributes its quietest (non-silent) candidate excerpt
SILENT_DBFS = -70.0  # excerpts below this RMS level are treated as silence and not used


class VisqolUnavailable(RuntimeError):
    """The Python 3.12 environment with audio-samples-qoe is missing or broken."""


@dataclass
class Item:
    """One excerpt under test, and everything measured on it."""

    name: str  # "package/track" or a file name
    start: float  # seconds into the track
    quiet: bool  # chosen as the quietest candidate of its track
    y: np.ndarray = field(repr=False)
    level_dbfs: float = 0.0  # RMS over all channels
    peak_dbfs: float = 0.0
    snr: dict = field(default_factory=dict)  # strength -> dB
    band_snr: dict = field(default_factory=dict)  # strength -> dB inside the marked band
    own: float | None = None  # ViSQOL original vs original
    marked: dict = field(default_factory=dict)  # strength -> ViSQOL original vs marked
    mp3: float | None = None  # ViSQOL original vs MP3 128 kbit/s


# --------------------------------------------------------------------------------------
# Material


def _dbfs(power: float) -> float:
    return 10.0 * np.log10(max(power, 1e-20))


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


def _spread(tracks: list, n: int, rng: np.random.Generator) -> list:
    """``n`` tracks drawn evenly over the packages (capped by each package's size)."""
    by_package: dict[str, list] = {}
    for t in tracks:
        by_package.setdefault(t.package, []).append(t)
    quota = dict.fromkeys(by_package, 0)
    left = min(n, len(tracks))
    while left:
        open_ = [p for p in sorted(by_package) if quota[p] < len(by_package[p])]
        for p in open_[:left]:
            quota[p] += 1
        left -= min(left, len(open_))
    chosen = []
    for p in sorted(by_package):
        idx = rng.choice(len(by_package[p]), size=quota[p], replace=False)
        chosen.extend(by_package[p][i] for i in sorted(idx))
    return chosen


def quietest_window(y: np.ndarray, seconds: float) -> int | None:
    """Start (in whole seconds) of the quietest ``seconds``-long window of ``y`` that is
    still music: window RMS above -60 dBFS and at most a quarter of its seconds silent
    (below `SILENT_DBFS`). None if there is no such window."""
    frames = len(y) // SR
    width = int(np.ceil(seconds))
    if frames < width:
        return None
    p = np.mean(np.square(y[:frames * SR].reshape(frames, SR, -1), dtype=np.float64),
                axis=(1, 2))
    csum = np.concatenate([[0.0], np.cumsum(p)])
    mean = (csum[width:] - csum[:-width]) / width
    silent = np.concatenate([[0], np.cumsum(p < 10 ** (SILENT_DBFS / 10))])
    n_silent = silent[width:] - silent[:-width]
    ok = (mean > 10 ** (-60 / 10)) & (n_silent <= width // 4)
    if not ok.any():
        return None
    return int(np.flatnonzero(ok)[np.argmin(mean[ok])])


def corpus_items(n_tracks: int, seconds: float, seed: int, all_tracks: bool) -> list[Item]:
    """One excerpt of each of ``n_tracks`` corpus tracks spread over every package.

    Every `QUIET_EVERY`-th track gives its quietest passage that is still music
    (`quietest_window`), so fades and sparse passages are in the set; the others give
    an excerpt starting anywhere in the track (uniformly drawn, `corpus.excerpts`),
    redrawn up to 4 times if it is silence.
    """
    import corpus

    rng = np.random.default_rng(seed)
    tracks = [t for t in corpus.list_tracks() if t.duration >= seconds + 1.0]
    chosen = tracks if all_tracks else _spread(tracks, n_tracks, rng)
    n = int(round(seconds * SR))
    items = []
    for i, track in enumerate(chosen):
        if i % QUIET_EVERY == QUIET_EVERY - 1:
            full = corpus.load_track(track, SR)
            start = quietest_window(full, seconds)
            if start is not None:
                items.append(Item(track.key, float(start), True,
                                  np.ascontiguousarray(full[start * SR:start * SR + n])))
                continue
        for _ in range(4):
            ex = corpus.excerpts([track], 1, seconds, rng)[0]
            y = corpus.load_excerpt(ex, SR)
            if _dbfs(_power(y)) > SILENT_DBFS:
                items.append(Item(track.key, round(ex.start, 2), False, y))
                break
    return items


def file_items(paths: list[Path], seconds: float) -> list[Item]:
    """The middle ``seconds`` of each file (the whole file if shorter), 44.1 kHz stereo."""
    items = []
    for path in paths:
        try:
            y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise SystemExit(f"quality.py: cannot read {path}: {exc}") from None
        if sr != SR:
            y = soxr.resample(y, sr, SR, quality="HQ").astype(np.float32)
        y = y[:, :2] if y.shape[1] >= 2 else np.repeat(y, 2, axis=1)
        n = min(len(y), int(round(seconds * SR)))
        start = (len(y) - n) // 2
        items.append(Item(Path(path).name, round(start / SR, 2), False,
                          np.ascontiguousarray(y[start:start + n])))
    return items


# --------------------------------------------------------------------------------------
# Marking and SNR


def snr_db(y: np.ndarray, marked: np.ndarray) -> float:
    """Signal-to-noise ratio of ``marked`` against ``y``, in dB, over all samples."""
    residual = marked.astype(np.float64) - y.astype(np.float64)
    noise = float(np.sum(np.square(residual)))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(float(np.sum(np.square(y, dtype=np.float64))) / noise)


def band_snr_db(y: np.ndarray, marked: np.ndarray, band=BAND_HZ) -> float:
    """SNR in dB counting only the power inside ``band`` (Hz), where the watermark is.

    Broadband SNR credits the host's bass, which carries no mark; this one does not,
    and it tracks the ViSQOL penalty much more closely.
    """
    f = np.fft.rfftfreq(len(y), 1.0 / SR)
    inside = (f >= band[0]) & (f < band[1])
    host = np.abs(np.fft.rfft(y.astype(np.float64), axis=0)[inside]) ** 2
    res = np.abs(np.fft.rfft(marked.astype(np.float64) - y, axis=0)[inside]) ** 2
    if res.sum() == 0.0:
        return float("inf")
    return 10.0 * np.log10(host.sum() / res.sum())


def mark_all(items: list[Item], strengths: list[float], log) -> dict:
    """Mark every item at every strength; fill in levels and SNRs.

    Returns ``{(item index, strength): marked audio}``.
    """
    import nowm

    marked = {}
    for i, item in enumerate(items):
        p = _power(item.y)
        item.level_dbfs = round(_dbfs(p), 2)
        item.peak_dbfs = round(20.0 * np.log10(max(float(np.abs(item.y).max()), 1e-10)), 2)
        for s in strengths:
            m = nowm.embed(item.y, SR, strength=s)
            item.snr[s] = round(snr_db(item.y, m), 3)
            item.band_snr[s] = round(band_snr_db(item.y, m), 3)
            marked[i, s] = m
        log(f"marked {i + 1}/{len(items)} {item.name} @ {item.start:.1f} s "
            f"({item.level_dbfs:.1f} dBFS): SNR "
            + ", ".join(f"{item.snr[s]:.1f} dB (x{s:g}, in band {item.band_snr[s]:.1f})"
                        for s in strengths))
    return marked


# --------------------------------------------------------------------------------------
# ViSQOL through the Python 3.12 worker


def visqol_python(arg: str | None) -> Path:
    """The interpreter that runs the worker: ``--visqol-python``, ``$NOWM_VISQOL_PYTHON``
    or ``~/.venvs/visqol/bin/python``; raises `VisqolUnavailable` if it cannot score."""
    if arg:
        path, origin = Path(arg).expanduser(), "--visqol-python"
    elif os.environ.get(VISQOL_ENV):
        path, origin = Path(os.environ[VISQOL_ENV]).expanduser(), f"${VISQOL_ENV}"
    else:
        path, origin = VISQOL_DEFAULT, "the default"
    if not path.is_file():
        raise VisqolUnavailable(
            f"ViSQOL Python {path} ({origin}) does not exist. ViSQOL needs a Python 3.12 "
            f"environment with audio-samples-qoe: {VISQOL_SETUP}; then pass --visqol-python "
            f"or set {VISQOL_ENV}, or run with --no-visqol for SNR only")
    return path


def visqol_check(python: Path) -> dict:
    """Run the worker's ``--check``: the package version, or `VisqolUnavailable`."""
    try:
        done = subprocess.run([str(python), str(WORKER), "--check"], capture_output=True,
                              text=True, timeout=120)
    except OSError as exc:
        raise VisqolUnavailable(f"cannot run {python}: {exc}") from None
    if done.returncode != 0:
        raise VisqolUnavailable(
            f"{python} cannot run ViSQOL: {done.stderr.strip() or done.stdout.strip()}. "
            f"Set it up with: {VISQOL_SETUP}")
    return json.loads(done.stdout)


def run_visqol(pairs: list[tuple[str, str]], python: Path, jobs: int, log) -> list[float]:
    """Score ``(reference, degraded)`` WAV pairs with ``jobs`` persistent workers.

    Pairs are handed out one at a time, so the workers stay busy until the end.
    """
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for i, pair in enumerate(pairs):
        todo.put((i, pair))
    scores: list[float | None] = [None] * len(pairs)
    failed = threading.Event()
    lock = threading.Lock()
    done_count = [0]
    t0 = time.perf_counter()

    def work() -> None:
        proc = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            while not failed.is_set():
                try:
                    i, (ref, deg) = todo.get_nowait()
                except queue.Empty:
                    break
                proc.stdin.write(json.dumps({"ref": ref, "deg": deg}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"ViSQOL worker exited (status {proc.poll()}) "
                                       f"while scoring {deg}")
                answer = json.loads(line)
                if "error" in answer:
                    raise RuntimeError(f"ViSQOL failed on {ref} vs {deg}: {answer['error']}")
                scores[i] = answer["score"]
                with lock:
                    done_count[0] += 1
                    log(f"visqol {done_count[0]}/{len(pairs)}: {Path(deg).name} "
                        f"{answer['score']:.4f} ({answer['seconds']:.1f} s, "
                        f"{time.perf_counter() - t0:.0f} s elapsed)")
        except BaseException:
            failed.set()
            raise
        finally:
            proc.stdin.close()
            proc.wait()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(work) for _ in range(max(1, min(jobs, len(pairs))))]
        for f in futures:
            f.result()
    return scores  # type: ignore[return-value]


def _write48(path: Path, y: np.ndarray) -> str:
    """Write float32 WAV at ViSQOL's 48 kHz (soxr HQ), so its own resampler is idle."""
    sf.write(str(path), soxr.resample(y, SR, VISQOL_SR, quality="HQ"), VISQOL_SR,
             subtype="FLOAT")
    return str(path)


def score_visqol(items: list[Item], marked: dict, strengths: list[float], python: Path,
                 jobs: int, mp3_tracks: int, log) -> None:
    """Fill in ``own``, ``marked`` and (on the first ``mp3_tracks`` items) ``mp3``."""
    with tempfile.TemporaryDirectory(prefix="nowm-quality-") as tmp:
        tmp = Path(tmp)
        pairs, slots = [], []
        for i, item in enumerate(items):
            ref = _write48(tmp / f"{i:03d}-orig.wav", item.y)
            pairs.append((ref, ref))  # identical files: the original's own score
            slots.append((i, "own", None))
            for s in strengths:
                pairs.append((ref, _write48(tmp / f"{i:03d}-marked-x{s:g}.wav", marked[i, s])))
                slots.append((i, "marked", s))
            if i < mp3_tracks:
                from attacks import mp3

                coded, _ = mp3(item.y, SR, kbps=128)
                pairs.append((ref, _write48(tmp / f"{i:03d}-mp3-128.wav", coded)))
                slots.append((i, "mp3", None))
        log(f"ViSQOL: {len(pairs)} pairs on {jobs} worker(s) with {python}")
        for (i, kind, s), score in zip(slots, run_visqol(pairs, python, jobs, log)):
            if kind == "marked":
                items[i].marked[s] = round(score, 5)
            else:
                setattr(items[i], kind, round(score, 5))


# --------------------------------------------------------------------------------------
# Summary, report, plot


def summarise(items: list[Item], s: float) -> dict:
    """Median and worst figures at strength ``s``, and pass/fail against the targets."""
    snrs = np.array([it.snr[s] for it in items])
    out = {
        "strength": s,
        "excerpts": len(items),
        "snr_median": round(float(np.median(snrs)), 2),
        "snr_min": round(float(np.min(snrs)), 2),
        "snr_pass": bool(np.median(snrs) >= TARGET_SNR_MEDIAN and np.min(snrs) >= TARGET_SNR_MIN),
        "band_snr_median": round(float(np.median([it.band_snr[s] for it in items])), 2),
        "band_snr_min": round(float(np.min([it.band_snr[s] for it in items])), 2),
    }
    if all(it.own is not None and s in it.marked for it in items):
        deltas = np.array([it.marked[s] - it.own for it in items])
        out.update({
            "visqol_own_median": round(float(np.median([it.own for it in items])), 4),
            "visqol_marked_median": round(float(np.median([it.marked[s] for it in items])), 4),
            "visqol_delta_median": round(float(np.median(deltas)), 4),
            "visqol_delta_worst": round(float(deltas[np.argmax(np.abs(deltas))]), 4),
            "visqol_fails": int(np.sum(np.abs(deltas) > TARGET_VISQOL_DELTA)),
        })
        out["visqol_pass"] = out["visqol_fails"] == 0
        if len(items) >= 3 and np.ptp(deltas) > 0:
            # How well each SNR predicts the ViSQOL penalty across excerpts.
            out["corr_delta_snr"] = round(float(np.corrcoef(deltas, snrs)[0, 1]), 2)
            out["corr_delta_band_snr"] = round(float(np.corrcoef(
                deltas, [it.band_snr[s] for it in items])[0, 1]), 2)
    return out


def _f(x, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _yes(ok) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def write_report(items: list[Item], strengths: list[float], meta: dict, out_dir: Path,
                 name: str) -> tuple[Path, Path]:
    """Write ``name.md`` and ``name.json`` into ``out_dir``; return both paths."""
    summaries = [summarise(items, s) for s in strengths]
    record = {
        **meta,
        "targets": {"snr_median_db": TARGET_SNR_MEDIAN, "snr_min_db": TARGET_SNR_MIN,
                    "visqol_max_abs_delta": TARGET_VISQOL_DELTA},
        "summary": summaries,
        "excerpts": [
            {"name": it.name, "start_s": it.start, "quiet_pick": it.quiet,
             "level_dbfs": it.level_dbfs, "peak_dbfs": it.peak_dbfs,
             "snr_db": {f"{s:g}": it.snr[s] for s in strengths},
             "band_snr_db": {f"{s:g}": it.band_snr[s] for s in strengths},
             "visqol_own": it.own,
             "visqol_marked": {f"{s:g}": it.marked.get(s) for s in strengths},
             "visqol_mp3_128": it.mp3}
            for it in items
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(record, indent=1) + "\n")

    visqol = meta.get("visqol") is not None
    lines = [
        f"# Inaudibility: SNR and ViSQOL{' (audio mode)' if visqol else ''}",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (nowm {meta['nowm_commit']}), "
        f"{meta['seconds_total']:.0f} s.",
        "",
        f"{len(items)} excerpts of {meta['seconds']:g} s "
        + ("from the files given" if meta.get("inputs") else
           f"from real music of the corpus (`benchmarks/corpus.py`, seed {meta['seed']}, "
           f"tracks spread over {meta['packages']} packages; every {QUIET_EVERY}th track gives "
           "its quietest passage that is still music, marked *q*; the others start anywhere)")
        + f", marked with `nowm.embed` at {SR} Hz stereo (policy no-ai-training, owner 0). "
        "SNR is over the whole excerpt and both channels.",
        "",
    ]
    if visqol:
        lines += [
            f"ViSQOL v3 in audio mode (`audio-samples-qoe` {meta['visqol']['version']}, "
            f"Python {meta['visqol']['python']}); both signals resampled to 48 kHz with soxr "
            "HQ and written as float WAV; ViSQOL averages the two channels to mono. "
            "*own* = original vs itself (identical files score about 4.73, not 5); "
            "*delta* = marked minus own.",
            "",
        ]
    else:
        lines += ["ViSQOL not measured in this run (`--no-visqol`).", ""]
    lines += [
        f"Targets (DESIGN §5): SNR median >= {TARGET_SNR_MEDIAN:g} dB and every excerpt >= "
        f"{TARGET_SNR_MIN:g} dB; ViSQOL within {TARGET_VISQOL_DELTA} of own on every excerpt.",
        "",
        "## Summary",
        "",
        "| strength | SNR median (dB) | SNR min (dB) | SNR target | in-band SNR median / min "
        "(dB) | ViSQOL own median | delta median | delta worst "
        "| excerpts with abs(delta) > 0.02 | ViSQOL target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sm in summaries:
        lines.append(
            f"| {sm['strength']:g}{' (default)' if sm['strength'] == 1.0 else ''} "
            f"| {sm['snr_median']:.1f} | {sm['snr_min']:.1f} | {_yes(sm['snr_pass'])} "
            f"| {sm['band_snr_median']:.1f} / {sm['band_snr_min']:.1f} "
            f"| {_f(sm.get('visqol_own_median'), '.4f')} "
            f"| {_f(sm.get('visqol_delta_median'), '+.4f')} "
            f"| {_f(sm.get('visqol_delta_worst'), '+.4f')} "
            f"| {_f(sm.get('visqol_fails'), 'd')} | {_yes(sm.get('visqol_pass'))} |")
    lines += [
        "",
        f"*In-band SNR* counts only the power between {BAND_HZ[0]:g} Hz and "
        f"{BAND_HZ[1]:g} Hz, where the watermark is (the host's bass carries no mark).",
    ]
    corr = [sm for sm in summaries if "corr_delta_snr" in sm]
    if corr:
        lines += [
            "Correlation across excerpts of the ViSQOL delta with the SNR: "
            + "; ".join(f"x{sm['strength']:g}: broadband r = {sm['corr_delta_snr']:+.2f}, "
                        f"in-band r = {sm['corr_delta_band_snr']:+.2f}" for sm in corr)
            + " (a positive r: more SNR, less ViSQOL penalty).",
        ]
    anchors = [it for it in items if it.mp3 is not None]
    if anchors:
        d = [it.mp3 - it.own for it in anchors]
        lines += [
            "",
            f"Sanity anchor, MP3 128 kbit/s (LAME CBR via PyAV) on {len(anchors)} excerpts: "
            f"ViSQOL median {np.median([it.mp3 for it in anchors]):.3f}, delta vs own median "
            f"{np.median(d):+.3f} (worst {min(d):+.3f}).",
        ]
    lines += ["", "## Per excerpt", ""]
    head = "| excerpt | start (s) | RMS (dBFS) |"
    rule = "|---|---|---|"
    for s in strengths:
        tag = f" x{s:g}" if len(strengths) > 1 else ""
        head += f" SNR{tag} (dB) | in-band{tag} |"
        rule += "---|---|"
    if visqol:
        head += " ViSQOL own |"
        rule += "---|"
        for s in strengths:
            tag = f" x{s:g}" if len(strengths) > 1 else ""
            head += f" marked{tag} | delta{tag} |"
            rule += "---|---|"
        if anchors:
            head += " MP3 128 |"
            rule += "---|"
    lines += [head, rule]
    for it in items:
        row = (f"| {it.name}{' *q*' if it.quiet else ''} | {it.start:.1f} "
               f"| {it.level_dbfs:.1f} |")
        for s in strengths:
            row += f" {it.snr[s]:.1f} | {it.band_snr[s]:.1f} |"
        if visqol:
            row += f" {_f(it.own, '.4f')} |"
            for s in strengths:
                m = it.marked.get(s)
                delta = None if m is None or it.own is None else m - it.own
                row += f" {_f(m, '.4f')} | {_f(delta, '+.4f')} |"
            if anchors:
                row += f" {_f(it.mp3, '.3f')} |"
        lines.append(row)
    if meta.get("plot"):
        lines += ["", f"Watermark residual against the host: `{meta['plot']}`."]
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def plot_residual(item: Item, marked: np.ndarray, s: float, path: Path) -> None:
    """Spectrogram of the host and of the residual (marked - original), same dB scale,
    and their long-term average spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scipy.signal

    host = item.y.astype(np.float64).mean(axis=1)
    residual = marked.astype(np.float64).mean(axis=1) - host
    kw = dict(fs=SR, nperseg=2048, noverlap=1536, window="hann", scaling="spectrum")
    f, t, p_host = scipy.signal.spectrogram(host, **kw)
    _, _, p_res = scipy.signal.spectrogram(residual, **kw)
    db_host = 10 * np.log10(p_host + 1e-14)
    db_res = 10 * np.log10(p_res + 1e-14)
    vmax = float(np.percentile(db_host, 99.5))
    vmin = vmax - 100.0

    fig, axes = plt.subplots(3, 1, figsize=(10, 10), constrained_layout=True,
                             gridspec_kw={"height_ratios": [1, 1, 0.9]})
    for ax, db, title in ((axes[0], db_host, "host (original, mono mix)"),
                          (axes[1], db_res, f"watermark residual: marked - original "
                                            f"(strength {s:g}, SNR {item.snr[s]:.1f} dB)")):
        mesh = ax.pcolormesh(t, f / 1000, db, vmin=vmin, vmax=vmax, shading="auto",
                             cmap="magma", rasterized=True)
        ax.set_ylabel("kHz")
        ax.set_title(title, fontsize=10)
    axes[1].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=axes[:2], label="power (dB, same scale)")
    lt_host = 10 * np.log10(p_host.mean(axis=1) + 1e-14)
    lt_res = 10 * np.log10(p_res.mean(axis=1) + 1e-14)
    ax = axes[2]
    ax.semilogx(f[1:], lt_host[1:], label="host")
    ax.semilogx(f[1:], lt_res[1:], label="residual")
    ax.set_xlim(20, SR / 2)
    ax.set_ylim(vmin, max(vmax, float(lt_host.max())) + 5)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("average power (dB)")
    ax.grid(True, which="both", alpha=0.3)
    # Residual relative to the host where the residual is not negligible.
    ratio = np.where(lt_res > lt_res.max() - 50, lt_res - lt_host, np.nan)
    twin = ax.twinx()
    twin.semilogx(f[1:], ratio[1:], color="0.35", lw=0.8, label="residual re host (right)")
    twin.set_ylim(-60, 0)
    twin.set_ylabel("residual re host (dB)")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower left")
    fig.suptitle(f"nowm watermark residual vs host: {item.name} @ {item.start:.1f} s",
                 fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Command line


def _strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--strength {text!r} must be numbers, "
                                         "comma-separated (e.g. 1 or 0.5,1,2)") from None
    if not values or any(not 0 < v <= 4 for v in values):
        raise argparse.ArgumentTypeError(f"--strength {text!r}: each value must be in (0, 4]")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="quality.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=24,
                   help="corpus tracks, spread over every package (default 24)")
    p.add_argument("--all", action="store_true", help="every corpus track (one excerpt each)")
    p.add_argument("--seconds", type=float, default=30.0, help="excerpt length (default 30)")
    p.add_argument("--strength", type=_strengths, default=[1.0],
                   help="embedding strength, or several comma-separated (default 1)")
    p.add_argument("--seed", type=int, default=2024, help="track and excerpt choice")
    p.add_argument("--input", type=Path, nargs="+", metavar="FILE",
                   help="score these audio files (their middle --seconds) instead of the corpus")
    p.add_argument("--no-visqol", action="store_true", help="SNR and plot only")
    p.add_argument("--visqol-python", metavar="PYTHON",
                   help=f"Python 3.12 with audio-samples-qoe (default ${VISQOL_ENV}, "
                        f"else {VISQOL_DEFAULT})")
    p.add_argument("--jobs", type=int, default=2, help="ViSQOL worker processes (default 2)")
    p.add_argument("--mp3-tracks", type=int, default=4,
                   help="excerpts also scored after MP3 128 kbit/s, as an anchor (default 4)")
    p.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    p.add_argument("--name", help="output file stem (default quality, or quality_strength "
                                  "when several strengths are given)")
    p.add_argument("--no-plot", action="store_true", help="do not write residual.png")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr,
                                                                   flush=True))
    t_start = time.perf_counter()
    if args.tracks < 1 or args.seconds < 2 or args.jobs < 1:
        print("quality.py: --tracks and --jobs must be >= 1 and --seconds >= 2",
              file=sys.stderr)
        return 2
    visqol_info, python = None, None
    if not args.no_visqol:  # fail fast, before any marking
        try:
            python = visqol_python(args.visqol_python)
            visqol_info = visqol_check(python)
        except VisqolUnavailable as exc:
            print(f"quality.py: {exc}", file=sys.stderr)
            return 2

    if args.input:
        items = file_items(args.input, args.seconds)
    else:
        items = corpus_items(args.tracks, args.seconds, args.seed, args.all)
    if not items:
        print("quality.py: no excerpt to measure", file=sys.stderr)
        return 1
    strengths = args.strength
    marked = mark_all(items, strengths, log)
    if python is not None:
        score_visqol(items, marked, strengths, python, args.jobs, args.mp3_tracks, log)

    plot = None
    if not args.no_plot:
        s = 1.0 if 1.0 in strengths else strengths[0]
        loud = [i for i, it in enumerate(items) if not it.quiet] or list(range(len(items)))
        pick = sorted(loud, key=lambda i: items[i].snr[s])[len(loud) // 2]  # median SNR
        plot = args.out / "residual.png"
        plot_residual(items[pick], marked[pick, s], s, plot)

    name = args.name or ("quality" if len(strengths) == 1 else "quality_strength")
    argv_shown = " ".join(argv if argv is not None else sys.argv[1:])
    meta = {
        "command": f"PYTHONPATH=$PWD/src python3 benchmarks/quality.py {argv_shown}".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "nowm_commit": _git_commit(),
        "seconds": args.seconds,
        "seed": None if args.input else args.seed,
        "inputs": [str(p) for p in args.input] if args.input else None,
        "packages": len({it.name.split("/")[0] for it in items}),
        "strengths": strengths,
        "visqol": visqol_info,
        "plot": (plot.name if plot and plot.parent == args.out else str(plot)) if plot else None,
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }
    md, js = write_report(items, strengths, meta, args.out, name)
    for sm in (summarise(items, s) for s in strengths):
        line = (f"strength {sm['strength']:g}: SNR median {sm['snr_median']:.1f} dB, "
                f"min {sm['snr_min']:.1f} dB ({'pass' if sm['snr_pass'] else 'FAIL'})")
        if "visqol_pass" in sm:
            line += (f"; ViSQOL own {sm['visqol_own_median']:.4f}, delta median "
                     f"{sm['visqol_delta_median']:+.4f}, worst {sm['visqol_delta_worst']:+.4f} "
                     f"({'pass' if sm['visqol_pass'] else 'FAIL'})")
        print(line)
    print(f"wrote {md}, {js}" + (f", {plot}" if plot else "")
          + f" in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
