"""``sorotask chaos``: kill workers, stop them, break the RPC; check from the devnet's own record
that nothing was lost or executed twice, and report how the keeper recovered.

Two modes::

    sorotask chaos [--duration S] [--report PATH] [--shards 4] [--tasks 2000] [--seed N]
    sorotask chaos --target URL --yes [--duration S] [--report PATH]

**Self-contained soak** (default): a devnet subprocess with fast ledger closes, ``--tasks``
recurring tasks, the supervisor as a real subprocess (``python -m sorotask.cli run --config``)
with ``--shards`` shards (each with channel accounts and a ``state_dir`` journal). For the
bounded run it SIGKILLs a random worker every ``--kill-every`` s, SIGSTOPs another every
``--stop-every`` s (briefly, or long enough to be detected as hung), and cycles the devnet
through fault phases (``devnet_setFaults``: latency spikes, HTTP 503, dropped connections,
TRY_AGAIN_LATER, transactions accepted as PENDING and never applied). The last part of the run
is quiet so every shard can catch up; then the supervisor gets SIGTERM.

Workload: ``--hot`` tasks (spread over the id range) recur every ``--hot-interval`` ledgers, so
they come due several times during a run; the other tasks form a stream with first due times
staggered at ``--cold-rate`` per ledger and recur after ``(tasks - hot) / cold-rate`` ledgers.
The keeper polls every ``close_every / 2`` s: it sees a ledger within half a ledger of its
close, so a due task can land in the next ledger or the one after (the strict bound below is
achievable with a ledger to spare).

**Invariants** (from the devnet's ``devnet_executions`` record, not the keeper's claims):

1. no wasted transaction: zero ``noop_not_due``, ``resolver_skipped``, ``unauthorized`` and
   ``failed`` effects (every target succeeds); no task executed twice in one due window;
2. lateness: each due window runs from the first ledger whose close time reaches the task's due
   time to the ledger that executed it (or the last ledger of the run). A window longer than
   ``--late-ledgers`` (3) is a *late window*. It is **attributed** when it overlaps a recorded
   cause -- a kill/stop-to-recovery window of its own shard, a devnet fault phase (any shard),
   or start-up -- and ends within ``hold + 3`` ledgers after that cause ended, where ``hold`` is
   ``ceil(tx_timeout_s / ledger_seconds) + 2``: a transaction in flight when the cause ended
   (journaled by a killed worker, or accepted and never applied) holds its task until its time
   bound passes, and one more poll dispatches it again. Any other late window is a violation
   (``unexplained``, or ``beyond accounted window``). Every late window is listed with its
   cause(s);
3. every shard is back to ``running`` (new pid, a finished cycle) after each kill and each hung
   replacement, within ``--recover-timeout`` s;
4. per shard, restarts reported by ``/status`` = kills + long (hung) stops; short stops cause
   none;
5. ``/status`` answered throughout (polled every 0.1 s; every failure is counted);
6. after shutdown no process of ours remains (supervisor, forkserver, workers, devnet: every
   pid seen, checked with psutil).

**Hostile mode** (``--hostile``, :mod:`~sorotask.chaos.hostile`): the soak under one fault
mix of a busy public RPC (30 % HTTP 503, 10 % dropped connections, 30 % TRY_AGAIN_LATER, 10 %
-32603, latency 100 +- 300 ms) for ``--duration`` s, then a calm end; 4 shards x 5 source
accounts, 120 tasks due every 12 ledgers; kills only with ``--kill-every``. Instead of
invariant 2 it reports the lateness of the tasks' repeat executions in ledgers (p50/p95/p99/max,
:mod:`~sorotask.chaos.lateness`) and fails unless p99 <= 5, max <= 10 and no window was wasted,
doubled or never executed.

**Target mode**: against an already running supervisor found through its ``/status``: only
pids that ``/status`` lists as shard workers *and* that psutil shows to be descendants of the
supervisor pid from ``/status`` are killed; refuses without ``--yes``. Checks invariants 3-5.

Exit code: 0 when every invariant held, 1 when one was violated, 64 for usage errors.

Modules: :mod:`~sorotask.chaos.params` (a run's parameters, fault phases, the workload plan),
:mod:`~sorotask.chaos.monkey` (kills and stops, recovery figures, invariants 3-4),
:mod:`~sorotask.chaos.soak` (the self-contained run), :mod:`~sorotask.chaos.target` (target
mode), :mod:`~sorotask.chaos.analysis` (the devnet's record, invariants 1-2),
:mod:`~sorotask.chaos.hostile` and :mod:`~sorotask.chaos.lateness` (``--hostile``),
:mod:`~sorotask.chaos.report` (the printed summary), :mod:`~sorotask.chaos.cli` (``main``).
Shared with ``sorotask bench``: :mod:`sorotask.toolkit`.
"""
