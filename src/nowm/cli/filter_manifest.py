"""``nowm filter-manifest IN.jsonl OUT.jsonl``: keep the rows a use is allowed on."""

from __future__ import annotations

import sys

from . import EXIT_OK, EXIT_UNREADABLE
from .scan import add_check_options, check_kwargs, progress


def add_parser(sub):
    p = sub.add_parser(
        "filter-manifest", help="copy the allowed rows of a JSONL manifest",
        description="Check every row of a NeMo-style JSONL manifest (audio_filepath, optional "
                    "offset/duration; relative paths from the manifest's folder) and copy the "
                    "allowed rows, verbatim and in order, to OUT. Rejected rows go with their "
                    "reasons to a side file (default OUT with .rejected before the suffix). "
                    "Exit status: 0 every row read, 2 usage error, 3 some rows unreadable.")
    p.add_argument("src", metavar="IN.jsonl")
    p.add_argument("dst", metavar="OUT.jsonl")
    p.add_argument("--rejected", metavar="FILE",
                   help="where rejected rows go (default OUT.rejected.jsonl)")
    add_check_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..ingest import filter_manifest, rejected_path

    summary = filter_manifest(args.src, args.dst, rejected=args.rejected, jobs=args.jobs,
                              force=args.force,
                              progress=lambda r: progress(r, not args.quiet),
                              **check_kwargs(args))
    if not args.quiet:
        rej = args.rejected or rejected_path(args.dst)
        print(f"nowm filter-manifest: {summary.text()}; {summary.counts['allowed']} rows written "
              f"to {args.dst}, {summary.total - summary.counts['allowed']} to {rej}",
              file=sys.stderr)
    return EXIT_UNREADABLE if summary.counts["unreadable"] else EXIT_OK
