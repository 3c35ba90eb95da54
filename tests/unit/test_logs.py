"""Log targets a detached master (start --daemon) cannot use: the pure rule. The daemon
itself is tested through the real CLI in tests/integration/test_daemon.py."""
from __future__ import annotations

import pytest

from dakia_prefork.logs import detached_target_problem


@pytest.mark.parametrize(("key", "target"), [("error_log", "stderr"), ("access_log", "stdout"),
                                             ("error_log", "stdout")])
def test_stdio_targets_are_refused_only_when_detached(key, target):
    assert detached_target_problem(key, target, False) is None
    problem = detached_target_problem(key, target, True)
    assert problem is not None
    assert problem.startswith(f"{key}: {target} is /dev/null for a master started with "
                              "--daemon")
    assert f"set {key} to a file" in problem and problem.endswith(f"keeps {target})")


@pytest.mark.parametrize(("key", "target"), [("error_log", "/var/log/dakia/error.log"),
                                             ("access_log", "off"),
                                             ("access_log", "/tmp/a.log")])
def test_files_and_off_serve_a_daemon(key, target):
    assert detached_target_problem(key, target, True) is None


def test_only_the_access_log_may_be_turned_off_instead():
    assert "a file or off" in detached_target_problem("access_log", "stdout", True)
    assert "or off" not in detached_target_problem("error_log", "stderr", True)
