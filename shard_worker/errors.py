"""Typed errors of the shard worker, by the seed's error levels.

Level 1 (task read error) and level 2 (execution error) are handled per task and never
surface as exceptions past the keeper loop. Level 3 (cycle error) is any :class:`RpcError`
escaping a cycle. Level 4 is :class:`FatalConfigError`: the keeper reports it and exits with
``ExitCode.CONFIG`` ("configuration error, do not restart").
"""

from __future__ import annotations


class KeeperError(Exception):
    """Base class of the shard worker's own errors."""


class FatalConfigError(KeeperError):
    """Level 4: restarting cannot help (bad secret, wrong network, missing contract/account).

    Messages must say what is wrong and what to do, and must never contain a secret.
    """


class SecretError(FatalConfigError):
    """A secret is missing or malformed. The message names where it was looked for."""


class RpcError(KeeperError):
    """Any failure talking to the RPC server (level 3 when it escapes a cycle)."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class RpcTransportError(RpcError):
    """Timeouts, connection errors, HTTP 429/5xx after all retries, other HTTP statuses."""

    def __init__(self, method: str, message: str, status: int | None = None) -> None:
        super().__init__(method, message)
        self.status = status


class RpcResponseError(RpcError):
    """A JSON-RPC error object; ``code`` is the JSON-RPC error code."""

    def __init__(self, method: str, code: int, message: str, data: object = None) -> None:
        super().__init__(method, f"JSON-RPC error {code}: {message}")
        self.code = code
        self.rpc_message = message
        self.data = data


class RpcMalformedError(RpcError):
    """The server answered something that is not a well-formed JSON-RPC response."""
