"""Running the ``nlpsuite`` command line in tests, in process or as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from click.testing import CliRunner


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def nlpsuite(*args: str, stdin: str | None = None) -> Done:
    """``nlpsuite ARGS`` in this process (models stay loaded between calls)."""
    from nlpsuite.cli import cli

    result = CliRunner().invoke(cli, list(args), input=stdin, prog_name="nlpsuite")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def nlpsuite_process(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``nlpsuite ARGS`` in a fresh interpreter, offline, output captured as text."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from nlpsuite.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def one_error_line(stderr: str) -> str:
    """The single ``nlpsuite: error:`` line of ``stderr``; fails if there is a traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("nlpsuite: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# Headless Chromium, for the pages a person opens (the leaderboard, the server's page).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    """The browser's path, or the test is skipped saying how to install one."""
    import pytest

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless browser test needs chromium (apt-get install chromium)")


def browse(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url`` with ``arguments`` (``--dump-dom``, ``--screenshot=...``),
    in a fresh profile."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments, url],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile},
        )
