"""``sorotask bench``: our sharded keeper against the seed design, side by side on one devnet.

One run:

1. starts a devnet with ``--latency-ms L`` on every request and seeds N tasks: a fraction
   ``F`` recur every ``--due-interval-ledgers`` ledgers (the due work), the rest are not due;
2. measures the seed design (one process, ``simulateTransaction`` of ``get_task`` per task, 10
   reads in flight) on an evenly spaced sample of the tasks; its cycle is N/10 sequential round
   trips plus per-task work, so it is reported both as measured and scaled linearly to N;
3. runs the real supervisor (``sorotask run --config``) with K shards and S source accounts per
   shard for C read cycles per shard, watching ``/status``; then changes every task entry at
   once (``devnet_touchTasks``) to measure a cycle in which everything changed;
4. reads the devnet's own record (``devnet_stats``, ``devnet_executions``) for RPC requests and
   bytes, executions per ledger and due-to-executed delay.

Nothing here is asserted: it prints figures (``--json``: one object) for people to read.

Modules: :mod:`~sorotask.bench.params` (parameters, the workload), :mod:`~sorotask.bench.run`
(the run), :mod:`~sorotask.bench.figures` (the figures and the printed table),
:mod:`~sorotask.bench.cli` (``main``); the seed design is :mod:`sorotask.seed_keeper`, what is
shared with ``sorotask chaos`` :mod:`sorotask.toolkit`.
"""
