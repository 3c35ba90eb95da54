"""How tests/integration/test_readme.py runs README.md's ```sh blocks: the rewrites that
make a command typed by a reader runnable by a script, the bash prelude, and the readiness
helper the prelude calls (``python readme_shell.py wait-ports|wait-new|snap``).

The blocks run as written except for these rewrites, each for a reason:

- ``/etc/dakia/`` and ``/tmp/`` become directories of the test's sandbox: the commands
  write there, and the machine's own directories are not the test's to change.
- ``make test`` becomes ``make -n test``: this test is part of the suite it runs. The dry
  run still fails if the target or a file it needs is missing.
- A command that stays in the foreground (``make run``, ``dakia-master start`` without
  ``--daemon``) is started in the background, as a reader would in another terminal, and
  the next line waits until it listens.
- After ``COMMAND &``, the next line waits until the ports written in the command listen
  (or, if it names none, until something new listens): a reader types slower than a script.
- ``curl ... # NNN ...``: a curl whose comment begins with a status code must get it.
  Every other ``curl`` fails on an HTTP error (``--fail-with-body``), and each has a
  timeout.
"""
from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

_PORT = re.compile(r"(?:(?<=:)|(?<=\s))(\d{4,5})(?=[\s/&]|$)")
_CURL_STATUS = re.compile(r"^(?P<cmd>curl\s.*?)\s+#\s*(?P<status>[1-5]\d\d)\b.*$")
_FOREGROUND = re.compile(r"^(make run\b|dakia-master start\b(?!.*--daemon))")


def logical_lines(text: str) -> list[str]:
    """Physical lines joined where they end with a backslash (the newline kept)."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line + "\n"
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending.rstrip("\n"))
    return out


def _code_of(line: str) -> str:
    """The line without a trailing comment (a `#` that starts a word, outside quotes)."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return " ".join(lexer)
    except ValueError:
        return line


def rewrite(text: str, sandbox: Path) -> str:
    # One pass, at the start of a path only: the sandbox itself may live under /tmp/.
    text = re.sub(r"(?<![\w.~/-])/(etc/dakia|tmp)/",
                  lambda m: f"{sandbox}/{m.group(1)}/", text)
    out = []
    for line in logical_lines(text):
        stripped = line.strip()
        code = _code_of(stripped)
        if re.match(r"^make test\b", stripped):
            line = line.replace("make test", "make -n test", 1)
        elif _FOREGROUND.match(stripped):
            line = f"__foreground {stripped}"
        elif (status := _CURL_STATUS.match(stripped)) and "\\\n" not in line:
            line = f"__curl_expect {status.group('status')} {status.group('cmd')[5:]}"
        if code.endswith("&") and not code.endswith("&&"):
            ports = sorted(set(_PORT.findall(code)), key=int)
            waiter = f"__wait_ports {' '.join(ports)}" if ports else "__wait_new"
            head, _, comment = line.rpartition("&")
            line = f"__snap; {head}& {waiter}  # {comment.lstrip(' #')}".rstrip(" #")
        out.append(line)
    return "\n".join(out) + "\n"


PRELUDE = r"""
__helper() { "$README_PYTHON" "$README_HELPER" "$@"; }
__snap() { __helper snap; }
__wait_new() { __helper wait-new 60; }
__wait_ports() { __helper wait-ports 60 "$@"; }
curl() { command curl --max-time 20 --fail-with-body "$@"; }
__curl_expect() {  # STATUS CURL-ARGS...: polls (up to 15 s) until curl gets STATUS
    local want=$1 got deadline=$((SECONDS + 15)); shift
    while :; do
        got=$(command curl --max-time 10 -s -o "$README_OUT/curl.out" -w '%{http_code}' "$@") || true
        [ "$got" = "$want" ] && break
        if [ $SECONDS -ge $deadline ]; then
            echo "readme: curl $* answered $got, the README says $want" >&2; return 1
        fi
        sleep 0.1
    done
    command curl --max-time 10 -s -i "$@" | head -n 20; echo
}
__foreground() {  # a command the README leaves in the foreground, in the background
    local log="$README_OUT/foreground.$((++__fg)).log"
    __snap
    "$@" >"$log" 2>&1 </dev/null &
    if ! __helper wait-new 180; then cat "$log" >&2; return 1; fi
    # a URL the command tells the reader to open must answer
    local url
    url=$(grep -o 'open http://[^ ]*' "$log" | head -n 1 | cut -d' ' -f2) || true
    [ -z "$url" ] || __curl_expect 200 "$url" >/dev/null
}
__stop_all() {  # the namespace's init: TERM everything, wait (bounded) for it to exit
    kill -TERM -1 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    # kill -0 -1 succeeds while any other process of the namespace is left
    while kill -0 -1 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "readme: processes left after 30 s; the namespace's end kills them" >&2
            return 0
        fi
        sleep 0.1
    done
}
trap __stop_all EXIT
__helper lo-up    # a new network namespace's loopback starts down
mount -t tmpfs -o size=64m tmpfs /dev/shm   # this namespace's shared memory, gone with it
__fg=0
"""


def _listening() -> list[tuple[int, str]]:
    """(port, inode) of every TCP socket in LISTEN state in this network namespace."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":
                found.append((int(fields[1].rsplit(":", 1)[1], 16), fields[9]))
    return found


def loopback_up() -> None:
    """``ip link set lo up`` without iproute2 (not in a minimal Debian): SIOCSIFFLAGS."""
    import fcntl
    import socket
    import struct
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def main(argv: list[str]) -> int:
    snapshot = Path(__import__("os").environ["README_OUT"]) / "listening.snapshot"
    if argv[0] == "lo-up":
        loopback_up()
        return 0
    if argv[0] == "snap":
        snapshot.write_text(" ".join(inode for _, inode in _listening()))
        return 0
    deadline = time.monotonic() + float(argv[1])
    while time.monotonic() < deadline:
        now = _listening()
        if argv[0] == "wait-ports":
            if {int(p) for p in argv[2:]} <= {port for port, _ in now}:
                return 0
        else:
            before = set(snapshot.read_text().split()) if snapshot.exists() else set()
            if {inode for _, inode in now} - before:
                return 0
        time.sleep(0.05)
    print(f"readme: nothing listened within {argv[1]} s ({' '.join(argv)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
