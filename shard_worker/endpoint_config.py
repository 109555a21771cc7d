"""Where a shard's RPC endpoints are and how they are shown: ``network.rpc_urls`` entries.

Each :class:`EndpointConfig` is a URL with an optional ``weight``, ``max_requests_per_s`` and
headers whose values come from environment variables (API keys). The worker reads those
variables once (:func:`resolve_headers`); their values then live only inside
:class:`shard_worker.endpoints.Endpoint` and are never in a repr, a status document or an error.
The URL itself may carry credentials (userinfo, a query key, a key in the path), so everything
shown to people uses :attr:`EndpointConfig.label`: the URL without userinfo, query or fragment
and with key-like path segments as ``***`` (:func:`endpoint_label`), or an explicit ``name``.
Text that comes from elsewhere (a transport's error, a server's message) goes through
:func:`scrub_url` before anything shows it: every RPC client does that to its errors, for a
single ``rpc_url`` and for each endpoint of a pool alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from shard_worker.errors import SecretError

__all__ = ["EndpointConfig", "endpoint_label", "resolve_headers", "scrub_url", "shown_url"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
#: headers the RPC client sets itself
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "accept"})
#: a path segment that looks like an API key or token (16 or more URL characters, a letter and
#: a digit among them: hex, base64url, UUIDs): shown as ``***``
_KEY_SEGMENT = re.compile(r"(?=[^/]*[0-9])(?=[^/]*[A-Za-z])[A-Za-z0-9._~%+=-]{16,}\Z")
#: how a path segment that looks like a key is shown
MASK = "***"
#: a part of a URL shorter than this is not replaced in text (``/rpc``, ``1``: too common)
_MIN_SECRET = 6


def _masked_path(path: str) -> str:
    return "/".join(MASK if _KEY_SEGMENT.match(seg) else seg for seg in path.split("/"))


def endpoint_label(url: str) -> str:
    """``url`` without userinfo, query or fragment, a key-like path segment as ``***``:
    ``https://user:key@h:8000/rpc?k=1`` -> ``https://h:8000/rpc``,
    ``https://h/v2/9f3c0e5a41b2d7e8aa01`` -> ``https://h/v2/***``. Raises ``ValueError``
    (without echoing the URL) when it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("RPC URL is malformed (bad host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("RPC URL must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise ValueError("RPC URL has no host")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{_masked_path(parts.path)}"


def shown_url(url: str) -> str:
    """:func:`endpoint_label`, or a placeholder for a malformed URL (never the URL)."""
    try:
        return endpoint_label(url)
    except ValueError:
        return "(malformed RPC URL)"


def _url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that may be credentials (userinfo, query and its values, fragment,
    key-like path segments), as written and percent-decoded."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return set()
    found = {parts.query, parts.fragment, parts.username or "", parts.password or ""}
    found.update(v for pair in parts.query.split("&") for v in pair.split("=")[1:])
    found.update(seg for seg in parts.path.split("/") if _KEY_SEGMENT.match(seg))
    found |= {unquote(f) for f in found}
    return {f for f in found if len(f) >= _MIN_SECRET}


def scrub_url(text: str, url: str, label: str | None = None, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error's, a server's) with ``url`` in any of its forms replaced by ``label``
    (default: :func:`shown_url`), then every part of it that may be a credential, and every
    one of ``secrets`` (header values), replaced by ``***``. The one scrubbing rule: every
    RPC client applies it to its errors (:class:`shard_worker.rpc.RpcClient`)."""
    shown = shown_url(url) if label is None else label
    stripped = url.strip()
    forms = {
        stripped,
        stripped.rstrip("/"),
        stripped.split("#")[0],
        stripped.split("?")[0],
        stripped.split("?")[0].rstrip("/"),
    }
    for form in sorted(forms, key=len, reverse=True):
        if len(form) > 8:
            text = text.replace(form, shown)
    hidden = _url_secrets(url) | {s for s in secrets if len(s) >= _MIN_SECRET}
    for part in sorted(hidden, key=len, reverse=True):
        text = text.replace(part, MASK)
    return text


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One entry of ``network.rpc_urls``. ``headers_from_env`` maps a header name to the
    environment variable holding its value (never the value itself)."""

    url: str
    weight: float = 1.0
    max_requests_per_s: float | None = None
    headers_from_env: Mapping[str, str] = field(default_factory=dict)
    #: shown instead of the URL in logs, /status and metrics (when the path holds a key)
    name: str | None = None

    def __post_init__(self) -> None:
        label = endpoint_label(self.url)  # validates the URL
        if self.name is not None and not self.name.strip():
            raise ValueError(f"endpoint {label}: name must not be empty")
        label = self.label
        if not self.weight > 0:
            raise ValueError(f"endpoint {label}: weight must be > 0, got {self.weight}")
        if self.max_requests_per_s is not None and not self.max_requests_per_s > 0:
            raise ValueError(
                f"endpoint {label}: max_requests_per_s must be > 0 (or null: unlimited), "
                f"got {self.max_requests_per_s}"
            )
        for header, env in self.headers_from_env.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"endpoint {label}: {header!r} is not a valid header name")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"endpoint {label}: header {header} is set by the keeper")
            if not _ENV_NAME.match(env):
                raise ValueError(
                    f"endpoint {label}: header {header}: {env!r} is not an environment "
                    "variable name"
                )

    @property
    def label(self) -> str:
        """How the endpoint is shown: its ``name``, else its URL without credentials."""
        return self.name if self.name is not None else endpoint_label(self.url)

    def __repr__(self) -> str:
        headers = ", ".join(f"{h}=${e}" for h, e in self.headers_from_env.items())
        return (
            f"EndpointConfig({self.label!r}, weight={self.weight}, "
            f"max_requests_per_s={self.max_requests_per_s}, headers=[{headers}])"
        )

    __str__ = __repr__


def resolve_headers(config: EndpointConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The endpoint's extra headers with their values read from ``environ`` (once, in the
    worker). Errors name the endpoint and the variable, never a value."""
    headers: dict[str, str] = {}
    for header, env in config.headers_from_env.items():
        value = environ.get(env)
        if value is None:
            raise SecretError(
                f"endpoint {config.label}: header {header} reads environment variable {env}, "
                "which is not set"
            )
        value = value.strip()
        if not value:
            raise SecretError(
                f"endpoint {config.label}: environment variable {env} (header {header}) is empty"
            )
        if any(c in value for c in "\r\n\0"):
            raise SecretError(
                f"endpoint {config.label}: environment variable {env} (header {header}) holds "
                "a line break or NUL"
            )
        headers[header] = value
    return headers
