"""``nowm keygen KEYFILE``: create a private key."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("keygen", help="create a private key file",
                       description="Create a private key for a second, private mark layer. "
                                   "Keep it secret: whoever holds it can detect (and add) that layer.")
    p.add_argument("keyfile", metavar="KEYFILE")
    p.add_argument("--force", action="store_true", help="replace KEYFILE if it exists")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..keys import generate_key, save_key

    key = generate_key()
    path = save_key(key, args.keyfile, force=args.force)
    print(f"{path}: new private key, fingerprint {key.fingerprint} (file mode 0600; keep it secret)")
    return 0
