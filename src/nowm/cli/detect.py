"""``nowm detect PATH... [--json]``: check files for a mark."""

from __future__ import annotations

import json
import math
import sys

from . import EXIT_NOT_MARKED, EXIT_OK, EXIT_UNREADABLE, _options


def add_parser(sub):
    p = sub.add_parser("detect", help="check audio files for a mark",
                       description="Check audio files for a nowm mark. Exit status: 0 every input "
                                   "marked, 1 some input not marked, 2 usage error, 3 some input "
                                   "could not be read.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object per input (JSON Lines)")
    _options.add_key(p, "detect")
    p.add_argument("--threshold", type=_options.probability, default=None, metavar="FA",
                   help="false-alarm probability that counts as marked (default 1e-6)")
    p.add_argument("--no-tags", dest="tags", action="store_false",
                   help="do not read the file's rights metadata (reported as \"tags\")")
    p.set_defaults(run=run)


def _record(path, det=None, error=None) -> dict:
    rec = {"path": str(path), "marked": False, "false_alarm": None, "policy": None,
           "owner": None, "duration": None, "tags": None, "error": error}
    if det is not None:
        rec.update(det.to_dict())
        rec["path"] = str(path)
        rec["error"] = None
        for k, v in rec.items():  # JSON has no infinities
            if isinstance(v, float) and not math.isfinite(v):
                rec[k] = None
    return rec


def run(args) -> int:
    from ..detection import DEFAULT_THRESHOLD
    from ..errors import NowmError, ParameterError
    from ..files import detect_file
    from ..keys import resolve_key

    key = resolve_key(args.key) if args.key else None
    threshold = args.threshold or DEFAULT_THRESHOLD
    any_unmarked = any_error = False
    for path in args.paths:
        try:
            det = detect_file(path, key=key, threshold=threshold, tags=args.tags)
            rec = _record(path, det)
        except ParameterError:
            raise
        except NowmError as exc:
            rec = _record(path, error=str(exc))
            any_error = True
            print(f"nowm detect: error: {exc}", file=sys.stderr)
        if rec["error"] is None and not rec["marked"]:
            any_unmarked = True
        if args.json:
            print(json.dumps(rec), flush=True)
        elif rec["error"] is None:
            print(_line(rec), flush=True)
    if any_error:
        return EXIT_UNREADABLE
    return EXIT_NOT_MARKED if any_unmarked else EXIT_OK


def _line(rec) -> str:
    return _verdict(rec) + _tags_text(rec.get("tags"))


def _tags_text(tags) -> str:
    if not tags or not tags.get("findings"):
        return ""
    vocabularies = sorted({f["vocabulary"] for f in tags["findings"] if f["policy"]})
    if tags.get("policy"):
        return f"; tags say {tags['policy']} ({', '.join(vocabularies)})"
    return "; tags carry rights fields but no AI policy"


def _verdict(rec) -> str:
    fa = rec["false_alarm"]
    if rec["marked"]:
        owner = "owner unknown" if rec["owner"] is None else f"owner {rec['owner']}"
        return (f"{rec['path']}: MARKED {rec['policy']} ({owner}); false-alarm probability "
                f"{fa:.1e}, {rec['duration']:.1f} s")
    if rec.get("reason") == "too-short":
        from ..detection import MIN_DETECT_SECONDS

        return (f"{rec['path']}: too short to judge ({rec['duration']:.1f} s; the detector needs "
                f"at least {MIN_DETECT_SECONDS:g} s, and 3 s or more for a reliable verdict)")
    if rec.get("reason") == "silent":
        return f"{rec['path']}: digital silence, nothing to judge ({rec['duration']:.1f} s)"
    why = f" ({rec['reason']})" if rec.get("reason") else ""
    fa_txt = "n/a" if fa is None else f"{fa:.2g}"
    out = f"{rec['path']}: not marked{why}; false-alarm probability of best match {fa_txt}, {rec['duration']:.1f} s"
    from ..ingest import MIN_CHECK_SECONDS

    if rec["duration"] < MIN_CHECK_SECONDS:  # no verdict `nowm check` would count as allowed
        out += (f" (under {MIN_CHECK_SECONDS:g} s a mark is often missed; "
                "check a longer stretch of the source)")
    return out
