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
    testing_keepers stand-in keepers selected by ``SOROTASK_TEST_KEEPER`` (tests, chaos)

See docs/supervisor.md.
"""
