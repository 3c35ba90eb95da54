"""``dakia-master init-config`` and ``init-files``: the shipped files, written out safely.

Here the package runs from the checkout (an editable install), so the files come from
etc/dakia/ and tools/init/; tests/integration/test_package.py runs the same commands from
an installed sdist, where they come from the package's data/.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dakia_prefork import cli, samples

ROOT = Path(__file__).resolve().parents[2]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sample_is_the_checkout_default_and_init_files_are_all_there() -> None:
    assert samples.sample_config().read_bytes() == (ROOT / "etc/dakia/dakia.yaml").read_bytes()
    assert sorted(samples.init_files()) == sorted(p.name for p in (ROOT / "tools/init").iterdir())


def test_init_config_writes_a_valid_config(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o077)                        # a strict umask must not make it 0600
    try:
        target = tmp_path / "etc" / "dakia" / "dakia.yaml"     # parents are made
        assert cli.main(["init-config", str(target)]) == 0
    finally:
        os.umask(old)
    assert target.read_bytes() == (ROOT / "etc/dakia/dakia.yaml").read_bytes()
    assert mode_of(target) == 0o644
    assert f"{target}: the sample configuration (mode 0644)" in capsys.readouterr().out
    assert cli.main(["check", "-c", str(target)]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_init_config_keeps_an_existing_file_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dakia.yaml"
    target.write_text("workers: 7\n")
    assert cli.main(["init-config", str(target)]) == 1
    assert capsys.readouterr().err == (
        f"dakia-master: init-config: {target} exists; --force replaces it\n")
    assert target.read_text() == "workers: 7\n"
    assert cli.main(["init-config", "--force", str(target)]) == 0
    assert target.read_bytes() == (ROOT / "etc/dakia/dakia.yaml").read_bytes()
    assert mode_of(target) == 0o644
    # No temporary left; the sample's token file beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin.token", "dakia.yaml"]


def test_init_config_writes_the_admin_token_beside_the_sample_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dakia.yaml"
    assert cli.main(["init-config", str(target)]) == 0
    token = tmp_path / "admin.token"
    assert f"{token}: a new admin API token (mode 0600)" in capsys.readouterr().out
    text = token.read_text()
    assert len(text) == 65 and text.endswith("\n") and int(text, 16) > 0
    assert mode_of(token) == 0o600
    # The sample's admin section reads it: check validates the token file too.
    assert cli.main(["check", "-c", str(target)]) == 0
    # A second init-config (forced) keeps the token: rotating it is not a side effect.
    assert cli.main(["init-config", "--force", str(target)]) == 0
    assert f"{token}: kept" in capsys.readouterr().out
    assert token.read_text() == text


def test_init_token_writes_a_new_token_and_never_replaces_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.token", tmp_path / "b.token"
    assert cli.main(["init-token", str(first)]) == 0
    assert cli.main(["init-token", str(second)]) == 0
    assert first.read_text() != second.read_text()             # random, 256 bits each
    assert mode_of(first) == mode_of(second) == 0o600
    before = first.read_text()
    capsys.readouterr()
    assert cli.main(["init-token", str(first)]) == 1
    assert capsys.readouterr().err == (
        f"dakia-master: init-token: {first} exists; a token is never replaced (remove the "
        "file first to make a new one)\n")
    assert first.read_text() == before


@pytest.mark.parametrize("case", ["directory", "parent is a file"])
def test_init_config_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           case: str) -> None:
    if case == "directory":
        target, expected = tmp_path, f"{tmp_path} is a directory; give the file's path"
    elif case == "parent is a file":
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "dakia.yaml"
        expected = f"{target}: a parent of it is not a directory"
    else:
        raise AssertionError(case)
    assert cli.main(["init-config", str(target)]) == 1
    assert capsys.readouterr().err == f"dakia-master: init-config: {expected}\n"


def test_init_files_writes_every_file_with_its_mode(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "init"
    assert cli.main(["init-files", str(out)]) == 0
    for source in (ROOT / "tools/init").iterdir():
        assert (out / source.name).read_bytes() == source.read_bytes()
        assert mode_of(out / source.name) == (0o755 if source.name == "dakia" else 0o644)
    assert f"{out / 'dakia.service'} (mode 0644)" in capsys.readouterr().out
    # A second run refuses before writing anything; --force replaces them all.
    (out / "dakia.service").write_text("mine\n")
    assert cli.main(["init-files", str(out)]) == 1
    assert "exists; --force replaces it" in capsys.readouterr().err
    assert (out / "dakia.service").read_text() == "mine\n"
    assert cli.main(["init-files", "--force", str(out)]) == 0
    assert (out / "dakia.service").read_bytes() == (ROOT / "tools/init/dakia.service").read_bytes()
