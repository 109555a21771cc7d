"""The supervisor's YAML shard configuration: load, validate, resolve into a :class:`Plan`.

Every key, its type, default, bounds and meaning is declared once in
:mod:`sorotask_core.settings`; the README's configuration reference is rendered from those
declarations (:mod:`supervisor.config.reference`) and a commented file with every key is
``deploy/examples/sorotask.example.yaml``. The file holds a ``network`` block (required), a
``worker`` block (defaults for every shard), a ``supervisor`` block, and either a ``shards``
list or a ``split`` block that cuts one range into equal shards.

Several hosts (e.g. a Kubernetes StatefulSet): every host loads the same file and builds the
same full plan (so ranges are disjoint by construction), then runs only its slice: shard number
``i`` (0-based, in plan order) runs on host ``i % host_count``. ``host_index: auto`` takes the
index from ``$SOROTASK_HOST_INDEX``, else from the hostname's trailing ordinal
(``sorotask-2`` -> 2, as StatefulSet pods are named). Secrets are checked only for the local
slice (a pod mounts only its own keys); secret *references* are checked for all shards.

Every problem is collected (file, line, field path, message) and raised together as one
:class:`ConfigError`. Coverage gaps are warnings. Secret values are read only to validate them
and derive public keys; they never enter specs, messages, logs or errors.

Modules: ``problems`` (Problem, ConfigError, field paths), ``yamlsource`` (YAML with lines),
``schema`` (pydantic models from the declarations), ``shards`` (shard list, split, ranges,
secret references), ``secrets`` (secret checks), ``plan`` (what a config resolves into),
``loader`` (the entry points and the checks across shards), ``reference`` (README tables).
"""

from __future__ import annotations

from sorotask_core import settings as _s
from supervisor.config.loader import HOST_INDEX_ENV, load_config, parse_config
from supervisor.config.plan import Plan, RestartPolicy, ShardPlan, SupervisorSettings
from supervisor.config.problems import ConfigError, Problem, format_path
from supervisor.config.secrets import public_key_of

#: the YAML keys of each block, from the declarations
NETWORK_KEYS = _s.NETWORK.keys()
WORKER_KEYS = _s.WORKER.keys()
SUPERVISOR_KEYS = _s.SUPERVISOR.keys()
RESTART_KEYS = _s.RESTART.keys()
SHARD_KEYS = _s.key_names(_s.SHARD)
CHANNEL_KEYS = _s.key_names(_s.CHANNEL)
SPLIT_KEYS = _s.key_names(_s.SPLIT)
TOP_KEYS = set(_s.TOP)

__all__ = [
    "CHANNEL_KEYS",
    "HOST_INDEX_ENV",
    "NETWORK_KEYS",
    "RESTART_KEYS",
    "SHARD_KEYS",
    "SPLIT_KEYS",
    "SUPERVISOR_KEYS",
    "TOP_KEYS",
    "WORKER_KEYS",
    "ConfigError",
    "Plan",
    "Problem",
    "RestartPolicy",
    "ShardPlan",
    "SupervisorSettings",
    "format_path",
    "load_config",
    "parse_config",
    "public_key_of",
]
