"""``nowm embed IN [-o OUT]``: write a marked copy."""

from __future__ import annotations

import sys
import warnings

from . import _options


def add_parser(sub):
    p = sub.add_parser("embed", help="write a marked copy of an audio file",
                       description="Write a marked copy of IN (never IN itself), in the same format.")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: IN with .nowm before the suffix)")
    _options.add_policy(p)
    _options.add_owner(p)
    _options.add_key(p, "also embed")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="watermark strength multiplier in (0, 4] (default 1)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--no-tags", dest="tags", action="store_false",
                   help="do not write the policy into the file's metadata (XMP, ID3, Vorbis "
                        "comments, RIFF INFO, MP4 atoms)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..files import embed_file
    from ..keys import resolve_key

    key = resolve_key(args.key) if args.key else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report says the same thing
        report = embed_file(args.input, args.output, policy=args.policy, owner=args.owner,
                            key=key, strength=args.strength, force=args.force, tags=args.tags)
    if not args.quiet:
        layers = "public + private layer" if report.private_layer else "public layer"
        owner = f"owner {report.owner}" if report.owner_embedded else "owner not embedded (audio too short)"
        print(f"{report.dst}: marked {report.policy}, {owner}, {layers}; "
              f"{report.duration:.1f} s {report.samplerate} Hz {report.channels} ch "
              f"{report.subtype}, SNR {report.snr_db:.1f} dB")
        for note in report.notes:
            print(f"  note: {note}", file=sys.stderr)
        for note in report.tags:
            print(f"  tags: {note}", file=sys.stderr)
    return 0
