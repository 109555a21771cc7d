"""Typed errors of the shard worker, by the seed's error levels.

Level 1 (task read error) and level 2 (execution error) are handled per task and never
surface as exceptions past the keeper loop. Level 3 (cycle error) is any :class:`RpcError`
escaping a cycle. Level 4 is :class:`FatalConfigError`: the keeper reports it and exits with
``ExitCode.CONFIG`` ("configuration error, do not restart").
"""

from __future__ import annotations

import email.utils

#: JSON-RPC codes stellar-rpc answers when busy (SOROBAN_FACTS.md, "Round two"): a full
#: per-method queue, a request past its method's execution limit; and "internal error"
QUEUE_FULL_CODE = -32098
EXEC_TIMEOUT_CODE = -32001
INTERNAL_ERROR_CODE = -32603
#: the longest ``Retry-After`` honoured (a larger one is cut to this)
RETRY_AFTER_CAP_S = 30.0

# The kind of a failed RPC attempt (the names :mod:`shard_worker.endpoints` uses too).
#: "try again later": the server is busy, the request was not carried out
QUEUE_FULL, EXEC_TIMEOUT, HTTP_503, HTTP_429 = "queue_full", "exec_timeout", "http_503", "http_429"
#: transient: retried like the above
INTERNAL, SERVER_ERROR, TIMEOUT, TRANSPORT, MALFORMED = (
    "internal",
    "server_error",
    "timeout",
    "transport",
    "malformed",
)
#: not retried: the request itself is wrong (or the server refuses it for good)
HTTP_ERROR, RPC_ERROR = "http_error", "rpc_error"
TRY_AGAIN_LATER_KINDS = frozenset({QUEUE_FULL, EXEC_TIMEOUT, HTTP_503, HTTP_429})
RETRYABLE_KINDS = TRY_AGAIN_LATER_KINDS | {INTERNAL, SERVER_ERROR, TIMEOUT, TRANSPORT, MALFORMED}
#: a busy or unreachable server, not a wrong answer: what a caller retries beyond the client's
#: own attempts (an answer that does not make sense is a real failure)
UNAVAILABLE_KINDS = RETRYABLE_KINDS - {MALFORMED}


def kind_of_status(status: int) -> str:
    """The kind of an HTTP answer other than 200."""
    if status == 503:
        return HTTP_503
    if status == 429:
        return HTTP_429
    return SERVER_ERROR if status >= 500 else HTTP_ERROR


def kind_of_code(code: int) -> str:
    """The kind of a JSON-RPC error object's code."""
    if code == QUEUE_FULL_CODE:
        return QUEUE_FULL
    if code == EXEC_TIMEOUT_CODE:
        return EXEC_TIMEOUT
    return INTERNAL if code == INTERNAL_ERROR_CODE else RPC_ERROR


def parse_retry_after(
    value: str | None, now_unix: float, cap_s: float = RETRY_AFTER_CAP_S
) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value (delay-seconds or an HTTP-date;
    ``now_unix`` is the wall clock for the latter), at most ``cap_s``; None when absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(cap_s, float(int(value)))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(cap_s, max(0.0, when.timestamp() - now_unix))


class KeeperError(Exception):
    """Base class of the shard worker's own errors."""


class FatalConfigError(KeeperError):
    """Level 4: restarting cannot help (bad secret, wrong network, missing contract/account).

    Messages must say what is wrong and what to do, and must never contain a secret.
    """


class SecretError(FatalConfigError):
    """A secret is missing or malformed. The message names where it was looked for."""


class RpcError(KeeperError):
    """Any failure talking to the RPC server (level 3 when it escapes a cycle).

    ``kind`` names the failure (one of the kinds above); ``retry_after_s`` is the server's
    ``Retry-After`` (capped), when it gave one."""

    kind: str = TRANSPORT
    retry_after_s: float | None = None

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def unavailable(self) -> bool:
        """The server was busy or could not be reached (no wrong answer)."""
        return self.kind in UNAVAILABLE_KINDS

    @property
    def try_again_later(self) -> bool:
        """The server is busy: the request was not carried out."""
        return self.kind in TRY_AGAIN_LATER_KINDS


class RpcTransportError(RpcError):
    """Timeouts, connection errors, HTTP 429/5xx after all retries, other HTTP statuses."""

    def __init__(
        self,
        method: str,
        message: str,
        status: int | None = None,
        *,
        kind: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(method, message)
        self.status = status
        self.kind = kind or (TRANSPORT if status is None else kind_of_status(status))
        self.retry_after_s = retry_after_s


class RpcResponseError(RpcError):
    """A JSON-RPC error object; ``code`` is the JSON-RPC error code."""

    def __init__(self, method: str, code: int, message: str, data: object = None) -> None:
        super().__init__(method, f"JSON-RPC error {code}: {message}")
        self.code = code
        self.rpc_message = message
        self.data = data
        self.kind = kind_of_code(code)


class RpcMalformedError(RpcError):
    """The server answered something that is not a well-formed JSON-RPC response."""

    kind = MALFORMED
