"""Named process exit codes shared by the supervisor and its workers.

The supervisor decides whether to restart a worker from its exit code, so these values are
part of the contract between the two (and with systemd's ``RestartPreventExitStatus``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: Unexpected crash; the supervisor restarts the worker.
    CRASH = 1
    #: Command-line usage error.
    USAGE = 64
    #: Configuration error (missing or invalid secret, wrong network passphrase, contract not
    #: found, invalid config file): restarting cannot help, so the supervisor does not restart.
    CONFIG = 78
    #: The worker lost its parent (supervisor died); nothing to restart.
    ORPHANED = 79
    #: The supervisor stopped because shards failed (restart budget exhausted).
    SHARDS_FAILED = 80
