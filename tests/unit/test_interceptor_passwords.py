"""Password hashes, htpasswd files, API keys and the hashpw CLI (pure, no sockets)."""
from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
from pathlib import Path

import bcrypt
import pytest

from dakia_prefork.interceptors import hashpw
from dakia_prefork.interceptors.apikeys import KeyRing, hash_key, new_key, parse_key_hash
from dakia_prefork.interceptors.htpasswd import HtpasswdError, read_htpasswd
from dakia_prefork.interceptors.md5crypt import md5_crypt
from dakia_prefork.interceptors.passwords import make_hash, parse_hash

# Made with `openssl passwd -apr1 -salt <salt> <password>` and `openssl passwd -1 ...`.
APR1_VECTORS = [
    (b"myPassword", b"r31Qx1Ab", b"$apr1$r31Qx1Ab$OJ8s6MXn9DQ/mM9XkR3xR/"),
    (b"", b"abc", b"$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0"),
]


@pytest.mark.parametrize("password,salt,expected", APR1_VECTORS)
def test_md5_crypt_matches_openssl(password: bytes, salt: bytes, expected: bytes) -> None:
    assert md5_crypt(password, salt) == expected
    assert parse_hash(expected.decode())(password)
    assert not parse_hash(expected.decode())(password + b"x")


def test_md5_crypt_is_md5crypt_with_another_magic() -> None:
    assert md5_crypt(b"password", b"saltsalt", b"$1$") == b"$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"


@pytest.mark.parametrize("scheme", ["scrypt", "pbkdf2-sha256", "pbkdf2-sha512", "bcrypt"])
def test_made_hashes_verify_and_differ_by_salt(scheme: str) -> None:
    first, second = make_hash("pässword", scheme), make_hash("pässword", scheme)
    assert first != second
    verify = parse_hash(first)
    assert verify("pässword".encode())
    assert not verify(b"password")
    assert not verify(b"")


def test_scrypt_and_pbkdf2_strings_are_phc_style() -> None:
    assert make_hash("x").startswith("$scrypt$ln=15,r=8,p=1$")
    assert make_hash("x", "pbkdf2-sha256").startswith("$pbkdf2-sha256$i=600000$")


def test_bcrypt_2y_entries_and_long_passwords() -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    assert parse_hash(hashed.replace("$2b$", "$2y$", 1))(b"secret")
    long_hash = bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4)).decode()
    # bcrypt reads 72 bytes; like htpasswd and others, the rest is ignored, not an error.
    assert parse_hash(long_hash)(b"a" * 80)


def test_sha1_entries() -> None:
    entry = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    assert parse_hash(entry)(b"secret") and not parse_hash(entry)(b"Secret")


@pytest.mark.parametrize("text,message", [
    ("plaintext", "unsupported password hash format"),
    ("abJnggxhB/yWI", "unsupported password hash format"),          # crypt(3) DES
    ("$scrypt$ln=15,r=8,p=1$!!!$AAAA", "malformed"),
    ("$scrypt$ln=20,r=8,p=1$AAAAAAAA$" + "A" * 43, "MiB"),
    ("$pbkdf2-sha256$i=0$AAAAAAAA$" + "A" * 43, "iterations"),
    ("$pbkdf2-sha256$i=1000$AAAAAAAA$AAAA", "at least 16 bytes"),
    ("$2b$03$" + "a" * 53, "cost"),
    ("$apr1$toolongsalt$" + "a" * 22, "malformed"),
])
def test_bad_hashes_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_hash(text)


def test_htpasswd_files(tmp_path: Path) -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"s1").digest()).decode()
    bc = bcrypt.hashpw(b"s2", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n\nann:{sha}\nbob:{bc}\ncid:{APR1_VECTORS[0][2].decode()}\n")
    entries = {user: verify for user, _, verify in read_htpasswd(str(path))}
    assert set(entries) == {"ann", "bob", "cid"}
    assert entries["ann"](b"s1") and entries["bob"](b"s2") and entries["cid"](b"myPassword")
    assert not entries["bob"](b"s1")


@pytest.mark.parametrize("content,message", [
    ("ann\n", "line 1: expected user:hash"),
    ("# c\nann:{SHA}x\n", "line 2 (user 'ann'): "),
    ("ann:plain\n", "unsupported"),
    ("ann:$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0\nann:$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0\n",
     "line 2: user 'ann' appears twice"),
])
def test_htpasswd_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(content)
    with pytest.raises(HtpasswdError, match=re.escape(message)):
        read_htpasswd(str(path))
    with pytest.raises(HtpasswdError, match="cannot read"):
        read_htpasswd(str(tmp_path / "absent"))


def test_api_keys_hash_and_match_every_entry() -> None:
    key = new_key()
    assert len(key) >= 40
    ring = KeyRing([("first", parse_key_hash(hash_key("other-key-0000000"))),
                    ("ci", parse_key_hash(hash_key(key)))])
    assert ring.match(key) == "ci"
    assert ring.match(key[:-1]) is None
    assert ring.match("") is None
    with pytest.raises(ValueError, match="sha256:"):
        parse_key_hash("sha256:ABC")


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         stdin: str, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = hashpw.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().out


def test_hashpw_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(monkeypatch, capsys, "s3cret\n", "password", "--user", "bob")
    assert code == 0
    user, hashed = out.strip().split(":", 1)
    assert user == "bob" and parse_hash(hashed)(b"s3cret")
    assert _cli(monkeypatch, capsys, "s3cret\n", "verify", hashed)[0] == 0
    assert _cli(monkeypatch, capsys, "wrong\n", "verify", hashed)[0] == 1
    code, out = _cli(monkeypatch, capsys, "", "key", "--name", "ci")
    key_line, entry_line = out.strip().splitlines()
    key = key_line.removeprefix("key: ")
    assert entry_line == f"{{name: ci, key_hash: {hash_key(key)}}}"
    code, out = _cli(monkeypatch, capsys, "given-key-123456\n", "key", "--stdin")
    assert out.strip() == f"key_hash: {hash_key('given-key-123456')}"
    assert _cli(monkeypatch, capsys, "\n", "password")[0] != 0       # empty refused
