"""Smoke tests: every benchmark script runs end to end on a few seconds of audio.

The scripts run as users run them (``python benchmarks/X.py --quick``), on the
real-music corpus when it is already cached in ~/.cache/nowm-corpus, else on the
30 s real-music sample in ``samples/`` (nothing is downloaded). Results go to a
temporary folder, never to ``benchmarks/results``. Figures are not checked (the
engine is being tuned); the structure of the outputs is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

for _module, _why in (("av", "PyAV (codec attacks)"), ("pyloudnorm", "pyloudnorm (clip loudness)"),
                      ("pedalboard", "pedalboard (tempo/pitch attacks)"),
                      ("matplotlib", "matplotlib (plots)")):
    pytest.importorskip(_module, reason=f"benchmarks need {_why}: pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def bench():
    """``benchmarks/`` on sys.path (it is not a package), and its shared helpers."""
    env = dict(os.environ)  # _common sets thread-pool variables: keep them out of other tests
    sys.path.insert(0, str(BENCH))
    try:
        import _common

        yield _common
    finally:
        sys.path.remove(str(BENCH))
        os.environ.clear()
        os.environ.update(env)


@pytest.fixture
def run_script(tmp_path, bench):
    """Run ``benchmarks/NAME.py --quick`` in a child process; return the output folder."""
    source = "corpus" if bench.corpus_cached() else "sample"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["NOWM_BENCH_CACHE"] = str(tmp_path / "cache")
    if source == "sample":  # keep the decoded sample out of the home folder
        env["NOWM_CORPUS_DIR"] = str(tmp_path / "corpus")

    def run(name, *extra):
        out = tmp_path / name
        cmd = [sys.executable, str(BENCH / f"{name}.py"), "--quick", "--source", source,
               "--out-dir", str(out), *extra]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}"
        return out

    return run


def test_robustness_script(run_script, bench):
    out = run_script("robustness", "--jobs", "2")
    import robustness

    data = json.loads((out / "robustness.json").read_text())
    cells = {(c["attack"], c["clip_s"]): c for c in data["cells"]}
    assert set(cells) == {(a, L) for a in robustness.ATTACK_NAMES for L in (3.0, 10.0)}
    for c in cells.values():
        assert c["n"] == 2  # 2 excerpts x 1 clip: every attack ran
        assert 0 <= c["policy_detected"] + c["policy_wrong"] <= c["n"]
        assert 0 <= c["owner_correct"] + c["owner_wrong"] <= c["n"]
    md = (out / "robustness.md").read_text()
    assert "| mix-under-6db | 10 s | 2 |" in md and "Targets (DESIGN §5)" in md
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_false_alarms_script(run_script):
    out = run_script("false_alarms", "--jobs", "2")
    data = json.loads((out / "false_alarms.json").read_text())
    music = [g for g in data["groups"] if g["audio"] == "music"]
    assert sum(g["clips"] for g in music) >= 8
    for g in music:
        assert g["evaluated"] == 0 or 0.0 <= g["min_false_alarm"] <= 1.0
    assert "At the default threshold" in (out / "false_alarms.md").read_text()
    assert (out / "false_alarms.png").read_bytes()[:4] == b"\x89PNG"


def test_speed_script(run_script):
    out = run_script("speed")
    res = json.loads((out / "speed.json").read_text())["results"]
    assert res["embed_file"]["cpu_s"] > 0 and res["detect_batch"]["clips"] == 4
    assert res["startup"]["python -m nowm detect clip.wav"]["exit"] == 0  # the clip is marked
    assert all(v["maxrss_mb"] > 0 for v in res["memory"].values())
    assert "Start-up" in (out / "speed.md").read_text()


def _run_plain(tmp_path, bench, name, *args):
    """Run ``benchmarks/NAME.py ARGS`` (scripts without --quick) on the same source."""
    source = "corpus" if bench.corpus_cached() else "sample"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    if source == "sample":
        env["NOWM_CORPUS_DIR"] = str(tmp_path / "corpus")
    cmd = [sys.executable, str(BENCH / f"{name}.py"), "--source", source, *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}"
    return r


def test_scan_script(tmp_path, bench):
    out = tmp_path / "scan.txt"
    _run_plain(tmp_path, bench, "scan", "--clips", "2", "--no-ray", "--out", str(out))
    lines = out.read_text().splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["wav"], ["flac"], ["mp3"])}
    assert set(rows) == {"wav", "flac", "mp3"}
    assert all(r[-1] == "0/1" for r in rows.values())  # the unmarked clip is never flagged
    assert "control:" in out.read_text()


def test_catalog_script(tmp_path, bench):
    out = tmp_path / "catalog.txt"
    _run_plain(tmp_path, bench, "catalog", "--files", "5", "--seconds", "6", "--jobs", "1",
               "--out", str(out))
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.split()[:1] == ["1"])
    outcome = row.split(None, 5)[5]  # e.g. "4 marked, 1 failed": every file accounted for
    assert sum(int(part.split()[0]) for part in outcome.split(", ")) == 5
    for fmt in (".flac", ".m4a", ".mp3", ".ogg", ".wav"):
        assert f"  {fmt} " in text


def test_calibrate_functions(bench, tmp_path, monkeypatch):
    """benchmarks/calibrate.py's fit runs on null scores of the sample."""
    monkeypatch.setenv("NOWM_CORPUS_DIR", str(tmp_path))
    import calibrate

    from nowm._scheme import SCHEME

    rows = calibrate.null_scores(bench.sample_tracks(), 2, (3.0,), np.random.default_rng(1),
                                 SCHEME)
    assert 1 <= len(rows) <= 2 and all(r[1] == 3.0 for r in rows)  # silent clips are dropped
    assert calibrate.fit([r[2] for r in rows]) > 0
    # the nominal search is part of the whole one: its maximum is never higher
    assert all(r[3] <= r[2] for r in rows) and calibrate.fit([r[3] for r in rows]) > 0


def test_wilson_interval(bench):
    lo, hi = bench.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert bench.wilson(0, 10)[0] == 0.0 and bench.wilson(0, 10)[1] == pytest.approx(0.2775,
                                                                                     abs=1e-4)
    assert bench.wilson(10, 10)[1] == pytest.approx(1.0)


def test_mix_under_puts_the_marked_track_6_db_below(bench):
    import robustness

    rng = np.random.default_rng(3)
    y = (0.1 * rng.standard_normal((44100, 2))).astype(np.float32)
    other = (0.3 * rng.standard_normal((44100, 2))).astype(np.float32)
    for name, level in (("mix-under-6db", 6.0), ("mix-over-6db", -6.0)):
        out, _ = robustness.apply(name, y, 44100, rng, other)
        ratio = np.mean((out - y).astype(np.float64) ** 2) / np.mean(y.astype(np.float64) ** 2)
        assert 10 * np.log10(ratio) == pytest.approx(level, abs=0.05)


def test_targets_name_real_attacks(bench):
    import robustness

    assert {a for _, a, _ in robustness.TARGETS} <= set(robustness.ATTACK_NAMES)
    assert robustness.TARGETS[("policy", "clean", 10.0)] == 0.995
    assert len([k for k in robustness.TARGETS if k[0] == "policy" and k[2] == 10.0]) == 26


def test_false_alarm_allocation_covers_every_track(bench):
    import false_alarms

    alloc = false_alarms.allocate([60.0, 600.0, 120.0], 100)
    assert sum(alloc) == 100 and min(alloc) >= 1 and alloc[1] > alloc[2] > alloc[0]
    assert false_alarms.allocate([60.0] * 5, 3) == [1] * 5  # at least one each


def test_payload_code_script(tmp_path):
    """benchmarks/payload_code.py compares the payload codes on a Gaussian channel."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, str(BENCH / "payload_code.py"), "--quick", "--out-dir",
                        str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "payload_code.txt").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1")]
    assert len(rows) == 2 and "k9-r4-tailbiting" in text and "k7-r3-terminated" in text
    # 30 frames per cell: the rates parse as percentages
    for row in rows:
        rates = [float(cell.split("%")[0]) for cell in row.split("|")[2:4]]
        assert all(0.0 <= r <= 100.0 for r in rates)


def test_frontier_script(tmp_path):
    """benchmarks/frontier.py finds, per target, the lowest strength that meets it,
    and the largest strength the inaudibility targets allow."""

    def run_json(strength, detected, owner):
        cells = [dict(attack=a, clip_s=L, n=100, policy_detected=detected[(a, L)],
                      policy_wrong=0, owner_correct=owner[(a, L)], owner_wrong=0)
                 for a, L in detected]
        info = dict(commit="abc", engine_hash="def", date_utc="2026-01-01 00:00 UTC")
        d = dict(config=dict(strength=strength, excerpts=2, clips=50, sessions=[dict(run=info)]),
                 run=info, cells=cells, excerpts=[dict(snr_db=33.0), dict(snr_db=30.0)])
        p = tmp_path / f"r{strength}.json"
        p.write_text(json.dumps(d))
        return p

    keys = [("clean", 10.0), ("mp3-128", 3.0), ("aac-64", 10.0)]
    runs = [run_json(None, dict(zip(keys, (100, 90, 99))), dict(zip(keys, (70, 0, 50)))),
            run_json(1.5, dict(zip(keys, (100, 96, 99))), dict(zip(keys, (95, 0, 60)))),
            run_json(2.0, dict(zip(keys, (100, 99, 99))), dict(zip(keys, (99, 0, 70))))]
    summary = [dict(strength=s, snr_median=snr, snr_min=snr - 3.0, visqol_delta_median=-v / 2,
                    visqol_delta_worst=-v, visqol_fails=0)
               for s, snr, v in ((1.0, 33.0, 0.01), (1.5, 29.5, 0.03), (2.0, 27.0, 0.05))]
    q = tmp_path / "q.json"
    q.write_text(json.dumps(dict(summary=summary)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, str(BENCH / "frontier.py"), *map(str, runs), "--quality",
                        str(q), "--out-dir", str(tmp_path / "out")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    md = (tmp_path / "out" / "frontier.md").read_text()
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert rows["| policy 3 s mp3-128 >= 95 %"].endswith("| 90.0 | **96.0** | **99.0** | x1.5 |")
    assert rows["| owner id 10 s clean >= 99 % (implied)"].endswith("| x2 |")
    assert rows["| policy 10 s clean >= 99.5 %"].endswith("| x1 |")
    assert rows["| policy 10 s aac-64 >= 99.5 %"].endswith("| 99.0 | 99.0 | 99.0 | not within x2 |")
    # a row per target the runs cover (owner id after AAC-64 too), and no other
    assert len([k for k in rows if " >= " in k]) == 5
    assert "policy 10 s aac-64: more than x2" in md
    # SNR median 33 dB at x1 allows 10 ** (1 / 20) = x1.12, worst 30 dB x1.26; ViSQOL
    # crosses 0.02 half-way (in log strength) from x1 to x1.5: x1.22
    assert "SNR median 1.12, SNR worst 1.26, ViSQOL 1.22; all three: **1.12**" in md
    assert (tmp_path / "out" / "frontier.png").read_bytes()[:4] == b"\x89PNG"

    # a quality.py --no-visqol run has SNR only: the SNR limits alone bound the strength
    for r in summary:
        for k in ("visqol_delta_median", "visqol_delta_worst", "visqol_fails"):
            del r[k]
    q.write_text(json.dumps(dict(summary=summary)))
    r = subprocess.run([sys.executable, str(BENCH / "frontier.py"), *map(str, runs), "--quality",
                        str(q), "--out-dir", str(tmp_path / "snr")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    md = (tmp_path / "snr" / "frontier.md").read_text()
    assert "SNR median 1.12, SNR worst 1.26, ViSQOL not measured; all three: **1.12**" in md
    assert "| 1.5 | 29.5 | 26.5 | not measured | | |" in md
