"""supervisor package: runs one keeper worker process per shard (issue 4).

Modules:
    config          YAML shard config -> validated :class:`~supervisor.config.Plan`
    messages        versioned orjson pipe protocol between supervisor and workers
    worker_process  the worker process entry point (forkserver child)
    arbiter         :class:`~supervisor.arbiter.Arbiter`, the parent's lifecycle and main loop
    stats           per-shard and total aggregation of cycle statistics
    status_server   GET /status, /metrics, /health
    logsetup        loguru files per shard, rotation, JSON lines, redaction
    logtail         ``sorotask logs``
    demo            ``sorotask run`` without a config (embedded devnet)
    cli             ``sorotask run | check-config | status | logs``

The stand-in keepers of the test hook ``SOROTASK_TEST_KEEPER`` live in the tests
(tests/support/stand_ins.py), not here. See docs/supervisor.md.
"""
