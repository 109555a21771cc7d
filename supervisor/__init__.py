"""supervisor package: runs one keeper worker process per shard (issue 4).

Modules:
    config          YAML shard config -> validated :class:`~supervisor.config.Plan`
    messages        versioned orjson pipe protocol between supervisor and workers
    worker_process  the worker process entry point (forkserver child)
    arbiter         :class:`~supervisor.arbiter.Arbiter`, the parent's main loop, signals, reload
    pool            every shard's worker: start, stop, reap, restart, timers
    workers         one worker process's handles (pipe, signals, sampling)
    restarts        restart intensity: backoff and the crash-loop limit
    inbox           the table that applies each worker message to the registry
    registry        shard state and totals (one writer; snapshots for other threads)
    view            /status, /health, /metrics, the summary and progress line from a snapshot
    stats           per-shard and total aggregation of cycle statistics
    status_server   GET /status, /metrics, /health (asks the view)
    runner          run a plan and print its summary
    sdnotify        systemd notifications (READY, WATCHDOG, STOPPING)
    logsetup        loguru files per shard, rotation, JSON lines, redaction
    logtail         ``sorotask logs``
    control         the control socket (0600, peer uid checked); its thread only queues
    commands        what each ``sorotask ctl`` command does (run by the main loop)
    ctl             ``sorotask ctl``, the control client
    table           the shard table of ``sorotask status`` and ``sorotask ctl status``
    testhook        ``SOROTASK_TEST_KEEPER``: which stand-in keeper a test's worker runs
    cli             ``sorotask run | check-config | status | logs``

The stand-in keepers of the test hook ``SOROTASK_TEST_KEEPER`` live in the tests
(tests/support/stand_ins.py), not here. See docs/supervisor.md.
"""
