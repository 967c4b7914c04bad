"""``nowm batch SRC_DIR --out DST_DIR``: mark a whole catalog (see :func:`nowm.mark_catalog`)."""

from __future__ import annotations

import json
import sys

from . import _options


def add_parser(sub):
    p = sub.add_parser(
        "batch", help="mark every audio file of a folder tree (resumable, parallel)",
        description="Mirror SRC_DIR into DST_DIR, marking every audio file in its own format and "
                    "verifying each output; or mark in place with --in-place. A manifest records "
                    "every file, so running the same command again resumes. Exit status: 0 done, "
                    "2 usage error, 3 some file failed or carries another policy (a conflict).")
    p.add_argument("src_dir", metavar="SRC_DIR")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DST_DIR", help="folder to write the marked tree to")
    where.add_argument("--in-place", action="store_true",
                       help="replace the originals atomically (kept in SRC_DIR/.nowm-backup/)")
    p.add_argument("-j", "--jobs", type=_options.count(1), default=None, metavar="N",
                   help="worker processes (default: one per CPU)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local worker processes (default), or Ray: a cluster whose nodes all see "
                        "SRC_DIR and DST_DIR at the same paths (pip install 'nowm[ray]')")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address (with --engine ray; default: start a local Ray with "
                        "--jobs CPUs)")
    _options.add_policy(p)
    _options.add_owner(p)
    p.add_argument("--owners", metavar="FILE.csv",
                   help="CSV of path-or-glob,owner rows (the last matching row wins); "
                        "--owner is the default for files it does not cover")
    p.add_argument("--manifest", metavar="FILE",
                   help="SQLite manifest (default DST_DIR/.nowm-manifest.sqlite)")
    p.add_argument("--dry-run", action="store_true", help="list what would be done; write nothing")
    p.add_argument("--copy-other", action="store_true", help="copy files that are not audio to DST_DIR")
    p.add_argument("--force", action="store_true",
                   help="mark files that carry another policy, and replace outputs this batch did not write")
    p.add_argument("--no-backup", action="store_true", help="with --in-place: keep no copy of the originals")
    p.add_argument("--no-tags", action="store_true", help="embed the watermark only, write no metadata")
    _options.add_key(p, "also embed")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="watermark strength multiplier in (0, 4] (default 1)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary; failures are still printed")
    p.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..batch import FAILING, mark_catalog
    from ..errors import ParameterError
    from ..keys import resolve_key

    if not args.in_place and not args.out:
        raise ParameterError("give --out DST_DIR (or --in-place to replace the originals)")
    if args.no_backup and not args.in_place:
        raise ParameterError("--no-backup only applies to --in-place")
    if args.address and args.engine != "ray":
        raise ParameterError("--address needs --engine ray")
    key = resolve_key(args.key) if args.key else None
    report = mark_catalog(
        args.src_dir, args.out, jobs=args.jobs, policy=args.policy, owner=args.owner,
        owners=args.owners, manifest=args.manifest, in_place=args.in_place, dry_run=args.dry_run,
        copy_other=args.copy_other, force=args.force, no_backup=args.no_backup,
        progress=False if args.quiet else None, key=key, strength=args.strength,
        tags=not args.no_tags, engine=args.engine, address=args.address)
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    elif args.dry_run and not args.quiet:
        for f in report.files:
            print(f"{f.status}: {f.rel}" + (f" ({f.reason})" if f.reason else ""))
    if args.quiet:
        for f in report.files:
            if f.status in FAILING:
                print(f"nowm batch: {f.status}: {f.rel}: {f.reason}", file=sys.stderr)
    else:
        print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    return report.exit_status
