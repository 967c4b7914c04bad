"""``nowm scan PATH...``: one verdict per audio item of a dataset."""

from __future__ import annotations

import json
import sys

from . import EXIT_OK, EXIT_UNREADABLE, _options

_USES = ("ai-training", "genai-training", "tdm", "inference")


def add_check_options(p):
    """Options of the verdict, shared by ``scan`` and ``filter-manifest``."""
    p.add_argument("--use", default="ai-training", choices=_USES,
                   help="what the audio is for (default ai-training)")
    p.add_argument("--consent", action="store_true",
                   help="you hold the rightsholders' explicit, recorded opt-in: consent-required "
                        "audio counts as allowed")
    _options.add_key(p, "also search")
    p.add_argument("--threshold", type=_options.probability, default=1e-6, metavar="FA",
                   help="false-alarm probability that counts as marked (default 1e-6)")
    p.add_argument("--no-tags", dest="tags", action="store_false",
                   help="do not read reservation metadata (watermark only)")
    p.add_argument("--min-seconds", type=_positive, default=3.0, metavar="S",
                   help="audio shorter than this is reported too-short, not allowed (default 3)")
    p.add_argument("--allow-too-short", action="store_true",
                   help="let too-short audio through as allowed (its status stays too-short)")
    p.add_argument("--jobs", type=_options.count(0, " (0: one per core)"), default=1, metavar="N",
                   help="worker processes (0: one per core; default 1)")
    p.add_argument("--max-member-mb", type=_positive, default=256.0, metavar="MB",
                   help="largest tar member read (default 256 MB)")
    p.add_argument("--force", action="store_true", help="replace output files that exist")


def add_parser(sub):
    p = sub.add_parser(
        "scan", help="check a dataset: one verdict per audio item",
        description="Check audio files, folders (recursive), glob patterns, NeMo-style JSONL "
                    "manifests (audio_filepath) and webdataset tar shards for the nowm mark and "
                    "for reservation metadata. Prints one JSON object per item (or writes "
                    "--jsonl / --parquet) and a summary on stderr. Exit status: 0 every item "
                    "read, 2 usage error, 3 some items could not be read.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--jsonl", metavar="OUT", help="write JSON Lines records to OUT")
    out.add_argument("--parquet", metavar="OUT", help="write the records as Parquet (needs pyarrow)")
    add_check_options(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray Data (needs nowm[ray])")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address (with --engine ray; default: start a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(run=run)


def _positive(text):
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return v


def check_kwargs(args) -> dict:
    return dict(use=args.use, key=args.key, threshold=args.threshold, consent=args.consent,
                tags=args.tags, min_seconds=args.min_seconds,
                allow_too_short=args.allow_too_short)


class JsonlSink:
    def __init__(self, path, force):
        from ..ingest import AtomicOutput

        self.out = None if path in (None, "-") else AtomicOutput(path, force=force)
        self.fh = sys.stdout if self.out is None else self.out.file

    def write(self, rec):
        self.fh.write(json.dumps(rec) + "\n")
        if self.out is None:
            self.fh.flush()

    def close(self, ok=True):
        if self.out is not None:
            self.out.commit() if ok else self.out.discard()


class ParquetSink:
    """Parquet in row groups of ``batch`` records: memory bounded whatever the scan size."""

    def __init__(self, path, force, batch=2048):
        from ..errors import ParameterError

        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ParameterError("--parquet needs pyarrow: pip install 'nowm[scan]'") from None
        from .._arrow import schema
        from ..ingest import AtomicOutput

        self.out = AtomicOutput(path, force=force, mode="wb")
        self.writer = pq.ParquetWriter(self.out.file, schema())
        self.batch, self.rows = batch, []

    def write(self, rec):
        self.rows.append(rec)
        if len(self.rows) >= self.batch:
            self._flush()

    def _flush(self):
        from .._arrow import records_to_table

        if self.rows:
            self.writer.write_table(records_to_table(self.rows))
            self.rows = []

    def close(self, ok=True):
        if ok:
            self._flush()
        self.writer.close()
        self.out.commit() if ok else self.out.discard()


def progress(records, enabled):
    """Wrap ``records`` in a tqdm bar on stderr when it is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return records
    try:
        from tqdm import tqdm
    except ImportError:
        return records
    return tqdm(records, unit=" items", file=sys.stderr, dynamic_ncols=True)


def run(args) -> int:
    from ..errors import ParameterError
    from ..ingest import Summary, scan

    kwargs = check_kwargs(args)
    cap = int(args.max_member_mb * 2**20)
    if args.engine == "ray":
        try:
            from .. import ray as nowm_ray
        except ImportError as exc:
            raise ParameterError(f"--engine ray needs Ray Data: pip install 'nowm[ray]' ({exc})") from None
        records = nowm_ray.scan_records(args.paths, address=args.address, jobs=args.jobs,
                                        max_member_bytes=cap, **kwargs)
    else:
        if args.address:
            raise ParameterError("--address needs --engine ray")
        records = scan(args.paths, jobs=args.jobs, max_member_bytes=cap, **kwargs)
    sink = (ParquetSink(args.parquet, args.force) if args.parquet
            else JsonlSink(args.jsonl, args.force))
    summary = Summary()
    try:
        for rec in progress(records, not args.quiet):
            sink.write(rec)
            summary.add(rec)
    except KeyboardInterrupt:
        sink.close(ok=True)  # what was scanned is kept
        print(f"nowm scan: interrupted; {summary.text()}", file=sys.stderr)
        return 130
    except BaseException:
        sink.close(ok=False)
        raise
    sink.close(ok=True)
    if not args.quiet:
        print(f"nowm scan: {summary.text()}", file=sys.stderr)
    return EXIT_UNREADABLE if summary.counts["unreadable"] else EXIT_OK
