"""Command line: ``nowm embed | detect | batch | keygen | scan | filter-manifest``.

Each command is a small module over the library API. This module holds the one
place that turns nowm's exceptions into a message on stderr and an exit status.
Heavy imports (numba, scipy) happen inside the commands, so ``nowm --help`` is
fast.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_NOT_MARKED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

_COMMANDS = ("embed", "detect", "batch", "keygen", "scan", "filter-manifest")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"nowm: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from . import batch, detect, embed, filter_manifest, keygen, scan

    parser = _Parser(prog="nowm", description=(
        "Mark audio as not for AI training with an inaudible watermark, and detect the mark."))
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in (embed, detect, batch, keygen, scan, filter_manifest):
        mod.add_parser(sub)
    return parser


def _version():
    from .. import __version__

    return f"nowm {__version__}"


def _start_numba():
    """Initialise numba's CPU target without its BLAS probe, to start faster.

    Setting up numba's target (on the first kernel call, about 0.35 s even with a
    warm cache) imports ``scipy.linalg`` only to check that BLAS exists for
    ``np.dot`` inside compiled code; that import alone costs 0.15 s, a sixth of
    the start-up budget of ``nowm detect`` on one clip. nowm's kernels use no
    BLAS. While the target is set up, ``scipy.linalg`` is made to fail to import
    (numba then records no BLAS, and falls back to a plain loop for the one
    function that checks that flag); the placeholder is removed right after, so
    ``scipy.linalg`` and numba's linear algebra import normally later. Only the
    command-line process does this; the library never touches ``sys.modules``.
    """
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        return  # already imported or already set up: nothing to save
    sys.modules["scipy.linalg"] = None
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except Exception:  # a numba that sets up differently: leave it to the first kernel call
        pass
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from ..errors import NowmError, ParameterError

    if args.command in ("embed", "detect", "scan", "batch"):
        _start_numba()
    try:
        return int(args.run(args) or 0)
    except ParameterError as exc:
        print(f"nowm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NowmError as exc:
        print(f"nowm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print(f"nowm {args.command}: interrupted", file=sys.stderr)
        return 130
