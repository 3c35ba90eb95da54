"""Make the hashes basic_auth and key_auth configs hold.

::

    python -m dakia_prefork.interceptors.hashpw password [--scheme scrypt] [--user NAME]
    python -m dakia_prefork.interceptors.hashpw key [--name NAME] [--stdin]
    python -m dakia_prefork.interceptors.hashpw verify HASH

``password`` reads the password from the terminal (asked twice) or, when stdin is not a
terminal, from its first line, and prints the hash for ``password_hash`` (with ``--user``,
an htpasswd line ``NAME:hash``). ``key`` makes a new random API key and prints it and its
``key_hash``; with ``--stdin`` it hashes the key read from stdin's first line instead.
``verify`` reads a password the same way and exits 0 when it matches HASH, 1 otherwise.
A secret is never taken from the command line, where ``ps`` and shell history would see it.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Sequence

from .apikeys import hash_key, new_key
from .passwords import SCHEMES, make_hash, parse_hash


def _read_secret(prompt: str, confirm: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    secret = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != secret:
        raise SystemExit("hashpw: the two entries differ")
    return secret


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dakia_prefork.interceptors.hashpw",
                                     description="Make password hashes and API keys for "
                                                 "basic_auth and key_auth.")
    commands = parser.add_subparsers(dest="command", required=True)
    password = commands.add_parser("password", help="hash a password (for basic_auth)")
    password.add_argument("--scheme", choices=SCHEMES, default="scrypt")
    password.add_argument("--user", help="print an htpasswd line USER:hash")
    key = commands.add_parser("key", help="make an API key and its hash (for key_auth)")
    key.add_argument("--name", help="print a key_auth keys entry for NAME")
    key.add_argument("--stdin", action="store_true",
                     help="hash the key read from stdin instead of making one")
    verify = commands.add_parser("verify", help="check a password against a hash")
    verify.add_argument("hash")
    args = parser.parse_args(argv)

    if args.command == "password":
        secret = _read_secret("password: ", confirm=True)
        if not secret:
            raise SystemExit("hashpw: empty password")
        hashed = make_hash(secret, args.scheme)
        print(f"{args.user}:{hashed}" if args.user else hashed)
        return 0
    if args.command == "key":
        secret = sys.stdin.readline().rstrip("\r\n") if args.stdin else new_key()
        if not secret:
            raise SystemExit("hashpw: empty key")
        if not args.stdin:
            print(f"key: {secret}")
        entry = f"key_hash: {hash_key(secret)}"
        print(f"{{name: {args.name}, {entry}}}" if args.name else entry)
        return 0
    try:
        verifier = parse_hash(args.hash)
    except ValueError as exc:
        raise SystemExit(f"hashpw: {exc}") from None
    ok = verifier(_read_secret("password: ", confirm=False).encode("utf-8"))
    print("match" if ok else "no match")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
