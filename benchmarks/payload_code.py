"""Frame error rate of owner-payload codes at the payload's real repetition.

Usage::

    python benchmarks/payload_code.py [--trials 3000]
    python benchmarks/payload_code.py --quick --out-dir /tmp/p   # smoke test

The owner payload (48 bits: 32-bit id and CRC-16) is spread over the data tiles
of every pattern period, each coded bit on several tiles. After the detector's
soft combining, coded bit ``i`` carried by ``r_i`` tiles reads
``r_i * a * c_i + sqrt(r_i) * n`` with unit Gaussian noise ``n`` and a per-tile
amplitude ``a`` set by the clip. This script draws random payloads, passes them
through that channel at a given total data energy ``E = tiles * a**2`` (summed
over the clip), decodes them, and counts wrong frames, for

- ``k7-r3-terminated``: rate 1/3, K = 7, generators 133, 171, 165, six zero tail
  bits (162 coded bits): nowm's code up to session 7;
- ``k9-r4-tailbiting``: rate 1/4, K = 9, generators 765, 671, 513, 473 (cdma2000),
  tail-biting (192 coded bits), wrap-around Viterbi: :mod:`nowm.ecc` now.

``E`` relates to the detector's sync statistic: with a fraction ``f`` of the tiles
carrying sync, ``E`` is about ``z**2 * (1 - f) / f`` (z of 16, a clean 10 s clip's
mean with 32 ms tiles and f = 0.75, gives E of about 85).

Writes ``payload_code.txt`` to ``--out-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

sys.path.insert(0, str(HERE))
import _common  # noqa: E402
from nowm import _kernels, ecc  # noqa: E402

N_BITS = 48
DATA_TILES = 736  # data tiles per period: 64 x 46 tiles, a quarter of them data


class Terminated:
    """The terminated code nowm used up to session 7 (the encoder starts in state 0
    and ends with K - 1 zero tail bits), kept here for comparison."""

    def __init__(self, name, constraint, generators):
        self.name, self.k = name, constraint
        self.table = ecc._output_table(constraint, generators)
        self.signs = self.table.astype(np.float64) * 2.0 - 1.0
        self.n_out = len(generators)
        self.n_coded = (N_BITS + constraint - 1) * self.n_out

    def encode(self, bits):
        mask, state = (1 << (self.k - 1)) - 1, 0
        out = []
        for b in np.concatenate([bits, np.zeros(self.k - 1, np.int8)]):
            out.append(self.table[state, b])
            state = ((state << 1) | int(b)) & mask
        return np.concatenate(out)

    def decode(self, soft):
        out = np.empty(N_BITS + self.k - 1, np.int8)
        _kernels.viterbi(soft.reshape(-1, self.n_out), self.signs, self.k - 1, False, out)
        return out[:N_BITS]


class Shipped:
    """:mod:`nowm.ecc` as shipped (tail-biting, rate 1/4, K = 9)."""

    name = "k9-r4-tailbiting"
    n_coded = ecc.coded_length(N_BITS)
    encode = staticmethod(ecc.encode)

    @staticmethod
    def decode(soft):
        return ecc.decode(soft, N_BITS)


CODES = [Terminated("k7-r3-terminated", 7, (0o133, 0o171, 0o165)), Shipped()]


def frame_error_rate(code, energy, trials, rng):
    n_coded = code.n_coded
    reps = np.bincount(np.arange(DATA_TILES) % n_coded, minlength=n_coded).astype(float)
    a = np.sqrt(energy / DATA_TILES)
    wrong = 0
    for _ in range(trials):
        bits = rng.integers(0, 2, N_BITS).astype(np.int8)
        c = code.encode(bits) * 2.0 - 1.0
        y = reps * a * c + np.sqrt(reps) * rng.standard_normal(n_coded)
        wrong += not np.array_equal(code.decode(y), bits)
    return wrong / trials


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=3000, help="random payloads per cell")
    ap.add_argument("--energies", default="60,80,100,120,140,160,180",
                    help="data energies E, comma-separated")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument("--quick", action="store_true", help="smoke test: 30 trials, E = 100, 140")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.energies = 30, "100,140"
    t0 = time.perf_counter()
    info = _common.run_info()
    energies = [float(e) for e in args.energies.split(",")]
    lines = [f"# Frame error rate of 48-bit payloads, {DATA_TILES} data tiles per period, "
             f"{args.trials} random payloads per cell (seeded), 95 % Wilson intervals",
             "# produced by: python benchmarks/payload_code.py --trials "
             f"{args.trials}" + (" (--quick)" if args.quick else ""),
             f"# commit {info['commit']}, engine source hash {info['engine_hash']}, "
             f"{info['date_utc']}", "",
             "| data energy E | " + " | ".join(c.name for c in CODES) + " |",
             "|---|" + "---|" * len(CODES)]
    for e in energies:
        cells = []
        for c in CODES:
            fer = frame_error_rate(c, e, args.trials, np.random.default_rng(int(e)))
            lo, hi = _common.wilson(round(fer * args.trials), args.trials)
            cells.append(f"{100 * fer:.1f} % ({100 * lo:.1f}-{100 * hi:.1f})")
        lines.append(f"| {e:g} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines += ["", f"whole run: {time.perf_counter() - t0:.0f} s"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "payload_code.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
