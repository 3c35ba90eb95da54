"""README.md tells the truth: every fenced block is run or validated, or marked with why not.

One test case per block (its id is the block's line and language, ``L26-sh``). The
convention is in tests/integration/readme_blocks.py and README.md's Development section;
the rewrites that make a typed command scriptable are in tests/integration/readme_shell.py.

```sh blocks run as root in a namespace of their own (``unshare``: network, pid, mount), so
the README's fixed ports are free, every process a block starts is the namespace's and
ends with it (TERM first, then the kernel's SIGKILL when its init exits), and shared memory
is a private tmpfs. Blocks of one ``session`` share a namespace, in README order. What needs
the network (pip) is prepared before, outside the namespace: a session's checkout copy gets
its .venv, and ``pip install`` in a block installs from a local wheelhouse only.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import yaml

from dakia_prefork import cli

from . import readme_blocks, readme_shell
from .project import project_copy
from .readme_blocks import Block

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SCHEMA = json.loads((ROOT / "dakia_prefork" / "config" / "schema.json").read_text())
BLOCKS = readme_blocks.parse(README)
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(400)

def case_of(block: Block) -> Any:
    return pytest.param(block, id=block.ident)


RUN_LANGS = {"sh", "console"}


# -- the sandbox of a session, prepared outside its namespace ------------------------------
@dataclass
class Sandbox:
    root: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "out"


def checked(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
            ) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])


def setup_default(sandbox: Sandbox) -> None:
    """An empty directory, and the gateway under test (this checkout's) on PATH."""
    sandbox.cwd = sandbox.root / "work"
    sandbox.cwd.mkdir()
    sandbox.env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"


def setup_first_run(sandbox: Sandbox) -> None:
    """A fresh copy of the project, as a new user's clone; ``make .venv/.installed`` is
    made first (pip needs the network the namespace lacks), by the Makefile's own rule.
    Its .venv/bin is on PATH, as after ``. .venv/bin/activate``."""
    sandbox.cwd = project_copy(sandbox.root / "dakia-prefork")
    env = {**os.environ, "PATH": os.environ["PATH"]}
    env.pop("VIRTUAL_ENV", None)
    checked(["make", ".venv/.installed"], sandbox.cwd, 300, env=env)
    sandbox.env["PATH"] = f"{sandbox.cwd / '.venv' / 'bin'}:{os.environ['PATH']}"


def setup_install(sandbox: Sandbox) -> None:
    """A copy of the project, a new virtualenv on PATH (nothing installed in it), and a
    wheelhouse with the project's dependencies and build backend: ``pip`` in the blocks
    installs from it alone (PIP_NO_INDEX), so it cannot fetch anything else by the name."""
    sandbox.cwd = project_copy(sandbox.root / "dakia-prefork")
    wheels = sandbox.root / "wheelhouse"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    checked([*pip, "wheel", "--quiet", "--wheel-dir", str(wheels), ".[fast,redis]"],
            sandbox.cwd, 300)
    checked([*pip, "download", "--quiet", "--dest", str(wheels), "setuptools>=64", "wheel"],
            sandbox.cwd, 300)
    shutil.rmtree(sandbox.cwd / "build", ignore_errors=True)
    venv = sandbox.root / "venv"
    checked([sys.executable, "-m", "venv", str(venv)], sandbox.root, 120)
    sandbox.env.update(PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
                       PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels),
                       PIP_DISABLE_PIP_VERSION_CHECK="1")


SESSIONS: dict[str, tuple[Callable[[Sandbox], None], float]] = {
    "default": (setup_default, 60),
    "first-run": (setup_first_run, 120),
    "install": (setup_install, 240),
}


# -- givens: what the prose asks the reader to do by hand, done before the block ------------
def given_tls_listener(block: Block) -> str:
    # "uncomment the 127.0.0.1:8443 listener in etc/dakia/dakia.yaml"
    return r"""
sed -i -e 's/^      # \(- host: 127\.0\.0\.1\)$/      \1/' \
       -e 's/^      #   \(port: 8443\)$/        \1/' \
       -e 's/^      #   \(tls: {certificates: .*\)$/        \1/' etc/dakia/dakia.yaml
grep -q '^        port: 8443$' etc/dakia/dakia.yaml
grep -q '^        tls: {certificates: ' etc/dakia/dakia.yaml
"""


def given_shared_json(block: Block) -> str:
    # "with the shared document above in shared.json": the nearest JSON block above
    above = [b for b in BLOCKS if b.lang == "json" and b.line < block.line]
    assert above, "no JSON block above"
    return f"cat > shared.json <<'README_EOF'\n{above[-1].text}README_EOF\n"


def given_admin_gateway(block: Block) -> str:
    # The example reads the token from /etc/dakia/admin.token, talks to an admin API on
    # 127.0.0.1:9901 (the sample's) and expects to find version 3 there (ETag "3").
    return r"""
mkdir -p /etc/dakia/
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/dakia/admin.token )
dakia-master init-config /etc/dakia/dakia.yaml >/dev/null    # its admin: 127.0.0.1:9901
__foreground dakia-master start -c /etc/dakia/dakia.yaml
__wait_ports 9901
dakia-master reload -c /etc/dakia/dakia.yaml >/dev/null    # version 2
dakia-master reload -c /etc/dakia/dakia.yaml >/dev/null    # version 3
"""


GIVENS: dict[str, Callable[[Block], str]] = {
    "tls-listener": given_tls_listener,
    "shared-json": given_shared_json,
    "admin-gateway": given_admin_gateway,
}


def console_script(text: str) -> str:
    """The ``$ `` lines of a transcript; each gets a line of input (a password asked)."""
    lines = [line[2:] for line in text.splitlines() if line.startswith("$ ")]
    assert lines, "a console block without a `$ ` line"
    return "".join(f"<<<'readme-example-password' {line}\n" for line in lines)


# -- running a session -----------------------------------------------------------------------
@dataclass
class SessionResult:
    status: list[str]
    log: str
    returncode: int

    def verdict(self, block: Block) -> str | None:
        """None if the block ran to its end; else why not, with the log's tail."""
        if f"ok {block.ident}" in self.status:
            return None
        started = f"start {block.ident}" in self.status
        what = "failed" if started else "never started (an earlier block failed)"
        return f"{block.ident} {what}; exit {self.returncode}; log:\n{self.log[-6000:]}"


def session_of(block: Block) -> str:
    return block.marks.get("session", f"solo {block.ident}")


def session_script(blocks: list[Block], sandbox: Sandbox) -> str:
    parts = ["set -euo pipefail", readme_shell.PRELUDE]
    for block in blocks:
        parts.append(f"echo 'start {block.ident}' >> \"$README_OUT/status\"")
        parts.append(f"echo '### {block.ident} ({block.section})' >&2")
        given = block.marks.get("given")
        if given:
            assert given in GIVENS, f"{block.ident}: unknown given {given!r}"
            parts.append(readme_shell.rewrite(GIVENS[given](block), sandbox.root))
        body = console_script(block.text) if block.lang == "console" else block.text
        parts.append(readme_shell.rewrite(body, sandbox.root))
        parts.append(f"echo 'ok {block.ident}' >> \"$README_OUT/status\"")
    return "\n".join(parts) + "\n"


_RESULTS: dict[str, SessionResult] = {}


def run_session(name: str, tmp_factory: pytest.TempPathFactory) -> SessionResult:
    if name in _RESULTS:
        return _RESULTS[name]
    blocks = [b for b in BLOCKS if b.lang in RUN_LANGS and "skip" not in b.marks
              and session_of(b) == name]
    setup, timeout = SESSIONS[name if name in SESSIONS else "default"]
    root = tmp_factory.mktemp("readme-" + re.sub(r"\W+", "-", name))
    sandbox = Sandbox(root, root)
    for sub in ("out", "etc/dakia", "tmp"):
        (root / sub).mkdir(parents=True)
    setup(sandbox)
    script = root / "session.sh"
    script.write_text(session_script(blocks, sandbox))
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("PYTEST", "DAKIA_", "VIRTUAL_ENV"))},
           "README_OUT": str(sandbox.out), "README_PYTHON": sys.executable,
           "README_HELPER": readme_shell.__file__, "HOME": str(root), **sandbox.env}
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed: tools/system-deps installs it"
    with open(sandbox.out / "session.log", "w") as log:
        try:
            proc = subprocess.run(
                [unshare, "--net", "--pid", "--mount", "--fork", "--kill-child",
                 "--mount-proc", "bash", str(script)],
                cwd=sandbox.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            # subprocess killed unshare; --kill-child takes the namespace down with it.
            code = -1
            log.write(f"\nreadme: session {name} timed out after {timeout} s\n")
    status_file = sandbox.out / "status"
    status = status_file.read_text().splitlines() if status_file.exists() else []
    result = SessionResult(status, (sandbox.out / "session.log").read_text(), code)
    _RESULTS[name] = result
    return result


# -- configuration blocks ------------------------------------------------------------------
def write_stand_ins(etc: Path) -> None:
    """The files the README's configuration examples name under /etc/dakia (and site.pem
    beside the file): real certificates, keys and key sets, so `check` loads them."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from dakia_prefork.tls.certs import write_self_signed

    def pair(cert: str, key: str, names: list[str]) -> None:
        made = etc / ".made"
        shutil.rmtree(made, ignore_errors=True)
        write_self_signed(str(made), names, 30)
        (etc / cert).parent.mkdir(parents=True, exist_ok=True)
        os.replace(made / "cert.pem", etc / cert)
        os.replace(made / "key.pem", etc / key)

    pair("tls/example.pem", "tls/example.key", ["example.com", "www.example.com"])
    pair("tls/wild-api.pem", "tls/wild-api.key", ["*.api.example.com"])
    pair("site.pem", "site.key", ["example.com"])
    pair("gateway.pem", "gateway.key", ["gateway.internal"])
    pair("internal-ca.pem", "internal-ca.key", ["Internal CA"])
    token = etc / "admin.token"
    token.write_text("readme-admin-token-0123456789abcdef\n")
    token.chmod(0o600)

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    numbers = rsa_public.public_numbers()
    (etc / "jwks.json").write_text(json.dumps({"keys": [
        {"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": b64(numbers.n),
         "e": b64(numbers.e)},
        {"kty": "EC", "kid": "ec", "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": b64(ec_public.x).rjust(43, "A"), "y": b64(ec_public.y).rjust(43, "A")},
    ]}))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    etc = tmp_path_factory.mktemp("readme-config") / "etc" / "dakia"
    etc.mkdir(parents=True)
    write_stand_ins(etc)
    return etc


def config_of(block: Block, etc: Path) -> dict[str, Any]:
    text = block.text.replace("/etc/dakia/", f"{etc}/")
    fragment = json.loads(text) if block.lang == "json" else yaml.safe_load(text)
    return readme_blocks.place(fragment, readme_blocks.schema_keys(SCHEMA))


def check_config(block: Block, etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_of(block, etc)
    for name in set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)\}", block.text)):
        monkeypatch.setenv(name, "127.0.0.1")
    if "schema" in block.marks:
        # Only the JSON Schema: the semantic checks need what the example leaves out.
        jsonschema.Draft202012Validator(SCHEMA).validate(config)
        return
    path = etc / f"{block.ident}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["check", "-c", str(path)])
    assert code == 0, f"{block.ident} as placed:\n{path.read_text()}\ncheck said:\n{err.getvalue()}"
    assert f"{path}: configuration is valid" in out.getvalue()


# -- the cases -----------------------------------------------------------------------------
HANDLED = RUN_LANGS | {"yaml", "json", "python", "toml"}


# A block marked ``skip`` (each with its reason; test_every_block_is_handled keeps them few)
# gets no case at all rather than a skipped one: a skip in the run would read as a test
# that did not happen.
@pytest.mark.parametrize("block", [case_of(b) for b in BLOCKS
                                   if b.lang in HANDLED and "skip" not in b.marks])
def test_readme_block(block: Block, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                      stand_ins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.lang in RUN_LANGS:
        verdict = run_session(session_of(block), tmp_path_factory).verdict(block)
        assert verdict is None, verdict
    elif block.lang in ("yaml", "json"):
        check_config(block, stand_ins, monkeypatch)
    elif block.lang == "python":
        program = tmp_path / "example.py"
        program.write_text(block.text)
        result = subprocess.run([sys.executable, str(program)], capture_output=True,
                                text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    elif block.lang == "toml":
        assert tomllib.loads(block.text)


def test_every_block_is_handled() -> None:
    # The parser sees every block (a README of ~66 blocks; a parsing slip that found few
    # would let the rest go unchecked), each in a language this test knows.
    assert len(BLOCKS) >= 60, len(BLOCKS)
    fences = sum(1 for line in README.read_text().splitlines()
                 if re.match(r"^\s*```", line))
    assert fences == 2 * len(BLOCKS)
    unknown = [b.ident for b in BLOCKS if b.lang not in readme_blocks.KNOWN_LANGUAGES]
    assert not unknown, f"blocks in a language the README test does not know: {unknown}"
    # Every name a marker gives exists.
    for block in BLOCKS:
        if "session" in block.marks:
            assert block.marks["session"] in SESSIONS, block.ident
        if "given" in block.marks:
            assert block.marks["given"] in GIVENS, block.ident
        assert not ({"schema"} <= set(block.marks) and block.lang not in ("yaml", "json"))
    # Skips stay few: each is a block that cannot run in CI, with its reason.
    skipped = [b for b in BLOCKS if "skip" in b.marks]
    assert len(skipped) <= 6, [b.ident for b in skipped]
    assert all(len(b.marks["skip"].split()) >= 4 for b in skipped), \
        "a skipped block needs its reason"


def test_rewrites() -> None:
    # The few rewrites of readme_shell.py, on the lines they are for.
    sandbox = Path("/S")
    assert readme_shell.rewrite("make test    # all\n", sandbox) == "make -n test    # all\n"
    assert readme_shell.rewrite("make run     # x\n", sandbox) == "__foreground make run     # x\n"
    assert readme_shell.rewrite("dakia-master start -c /etc/dakia/d.yaml\n", sandbox) == \
        "__foreground dakia-master start -c /S/etc/dakia/d.yaml\n"
    assert readme_shell.rewrite("dakia-master start --daemon\n", sandbox) == \
        "dakia-master start --daemon\n"
    assert readme_shell.rewrite("python3 -m http.server 3000 &   # any\n", sandbox) == \
        "__snap; python3 -m http.server 3000 & __wait_ports 3000  # any\n"
    assert readme_shell.rewrite("etcd --a http://127.0.0.1:2379 \\\n  --b /tmp/e &\n",
                                sandbox) == \
        "__snap; etcd --a http://127.0.0.1:2379 \\\n  --b /S/tmp/e & __wait_ports 2379\n"
    assert readme_shell.rewrite("curl -i http://h/   # 502 Bad Gateway\n", sandbox) == \
        "__curl_expect 502 -i http://h/\n"
    assert readme_shell.rewrite("a && b\n", sandbox) == "a && b\n"
    # Paths are rewritten once, even when the sandbox is itself under /tmp/.
    assert readme_shell.rewrite("cat /tmp/x /etc/dakia/y a/tmp/z\n", Path("/tmp/S")) == \
        "cat /tmp/S/tmp/x /tmp/S/etc/dakia/y a/tmp/z\n"
