"""systemd's notification protocol (sd_notify), spoken by the supervisor's main loop.

With ``Type=notify`` and ``WatchdogSec=`` in the unit, systemd passes ``NOTIFY_SOCKET`` (a unix
datagram socket; a leading ``@`` means the abstract namespace) and ``WATCHDOG_USEC`` (plus
``WATCHDOG_PID``) in the environment. The supervisor then sends:

* ``READY=1`` once no shard is starting any more (each worker said hello, or failed, or waits in
  backoff), with a ``STATUS=`` line that ``systemctl status`` shows;
* ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, from its main loop only: a stalled loop stops
  the pings and systemd restarts the service (the status server's thread cannot keep it alive);
* ``STOPPING=1`` when it begins to shut down.

Without ``NOTIFY_SOCKET`` every call is a no-op. The variables are removed from the environment
once read (as sd_notify's ``unset_environment`` does), so worker processes do not inherit them.
Sending never raises: a lost notification is logged once and the supervisor carries on.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping

from loguru import logger

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | bytes:
    """The ``sendto`` address of a ``NOTIFY_SOCKET`` value (``@name``: abstract namespace)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(env: MutableMapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when the watchdog is off or
    meant for another process (``WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2e6


def status_line(states: Iterable[str]) -> str:
    """``STATUS=`` text from the shards' states, e.g. ``2/3 shards running, 1 failed``."""
    counts = Counter(str(s) for s in states)
    total = sum(counts.values())
    parts = [f"{counts.pop('running', 0)}/{total} shards running"]
    parts += [f"{n} {state}" for state, n in sorted(counts.items())]
    return ", ".join(parts)


class SdNotify:
    """The supervisor's side of sd_notify; ``loop`` is called once per main-loop turn."""

    def __init__(self, address: str | None, interval: float | None) -> None:
        self.address = address
        self.interval = interval if address else None
        self.ready_sent = False
        self.stopping_sent = False
        self.next_ping_at = time.monotonic() + self.interval if self.interval else math.inf
        self._status = ""
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, env: MutableMapping[str, str] | None = None) -> SdNotify:
        """Read (and remove) ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET") or None
        interval = watchdog_interval(env, os.getpid())
        for name in ENV_VARS:
            env.pop(name, None)
        if address:
            logger.info(
                "sd_notify to {}; watchdog {}",
                address,
                f"every {interval:g}s" if interval else "off",
            )
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """One datagram; False (logged once) if it could not be sent."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(message.encode(), socket_address(self.address))
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("sd_notify to {} failed: {}", self.address, exc)
            return False

    def loop(self, stopping: bool, states: Callable[[], Iterable[str]]) -> None:
        """Per main-loop turn: READY=1 once no shard is starting, WATCHDOG=1 when due (with the
        STATUS line if it changed), STOPPING=1 once the supervisor stops."""
        if self.address is None:
            return
        if stopping and not self.stopping_sent:
            self.stopping_sent = True
            self.send("STOPPING=1\nSTATUS=stopping")
        if not self.ready_sent and not stopping:
            current = list(states())
            if "starting" not in current:
                self.ready_sent = True
                self._status = status_line(current)
                self.send(f"READY=1\nSTATUS={self._status}")
        now = time.monotonic()
        if now >= self.next_ping_at:
            assert self.interval is not None
            self.next_ping_at = now + self.interval
            message = "WATCHDOG=1"
            if self.ready_sent and not stopping:
                status = status_line(states())
                if status != self._status:
                    self._status = status
                    message += f"\nSTATUS={status}"
            self.send(message)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
