"""ViSQOL (audio mode) scoring worker for ``benchmarks/quality.py``.

Runs in a separate Python 3.12 environment that has the PyPI package
``audio-samples-qoe`` (0.1.2: a pure-Rust ViSQOL v3 with a prebuilt wheel; its
dependency ``audio-samples`` ships wheels for Python 3.12 only). It imports nothing
from nowm, only the standard library and that package.

Protocol (JSON Lines): each line read from stdin is ``{"ref": PATH, "deg": PATH}``;
for each, one line is written to stdout, ``{"ref", "deg", "score", "seconds"}`` or
``{"ref", "deg", "error"}``, and flushed, so the parent can feed pairs one at a time
to several workers. ``--check`` prints ``{"version": ...}`` and exits.

    python _visqol_worker.py --check
    echo '{"ref": "a.wav", "deg": "b.wav"}' | python _visqol_worker.py
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    try:
        import audio_samples_qoe
        from audio_samples_qoe import visqol
    except ImportError as exc:
        print(f"_visqol_worker: cannot import audio_samples_qoe with {sys.executable} "
              f"(Python {sys.version.split()[0]}): {exc}", file=sys.stderr)
        return 3
    if argv[1:] == ["--check"]:
        print(json.dumps({"version": audio_samples_qoe.__version__,
                          "python": sys.version.split()[0]}), flush=True)
        return 0
    if argv[1:]:
        print(f"usage: {argv[0]} [--check]  (pairs as JSON lines on stdin)", file=sys.stderr)
        return 2
    for line in sys.stdin:
        if not line.strip():
            continue
        pair = json.loads(line)
        out = {"ref": pair["ref"], "deg": pair["deg"]}
        t0 = time.perf_counter()
        try:
            # Audio mode: full band, 32 gammatone bands, SVR mapping; the package
            # averages channels to mono and works at 48 kHz.
            out["score"] = float(visqol(pair["ref"], pair["deg"], mode="audio"))
        except Exception as exc:  # report and go on: the parent decides what to do
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["seconds"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
