"""Listing and help must never pay for torch or transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from nlpsuite.cli import main
sys.argv = ["nlpsuite", *{args!r}]
try:
    main()
except SystemExit:
    pass
heavy = [m for m in ("torch", "transformers", "sklearn", "evaluate") if m in sys.modules]
print("HEAVY:", ",".join(heavy))
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["plugins"], ["tasks"], ["run", "--help"], ["run", "sentiment", "--help"]]
)
def test_listing_does_not_import_heavy_libraries(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY: "


def test_importing_the_package_is_light() -> None:
    code = "import nlpsuite, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False False"
