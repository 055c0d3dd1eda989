"""Loaded at interpreter start when tests/hooks is on PYTHONPATH (tests/conftest.cli_env puts it there
for a test that asks for a fault): installs trainkit_faults when one of its variables is set."""

import os

if any(os.environ.get(name) for name in ("TRAINKIT_TEST_SIGNAL", "TRAINKIT_TEST_KILL_IN_WRITE")):
    import trainkit_faults

    trainkit_faults.install_on_import()
