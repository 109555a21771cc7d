"""The control socket: ``sorotask ctl`` talks to a running supervisor over a unix socket.

The socket is ``<state_dir>/control.sock``, created with mode 0600 (the umask is restrictive
*before* ``bind``, so there is no moment when it is more open) and owned by the supervisor's
user. Both ends check it: the supervisor refuses a connection whose peer (``SO_PEERCRED``) is
another uid, and the client refuses to talk to a socket file that is not a socket, not owned by
its own user or not mode 0600. The HTTP status server stays read-only; this is the only way in.

Protocol: one request line, one reply line, then the connection closes. Both are JSON objects:
``{"v": 1, "command": "stop", "shard": "s1"}`` -> ``{"ok": true, "message": "..."}`` or
``{"ok": false, "error": "..."}`` (``status`` replies ``{"ok": true, "status": {...}}``, the
``/status`` document).

Threads: :class:`ControlServer` accepts and reads in threads of its own, but it only *enqueues*
each request (the ``submit`` callback) and waits for the reply; the arbiter's main loop answers
it (:mod:`supervisor.commands`), so no other thread ever changes the supervisor's state.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

SOCKET_NAME = "control.sock"
PROTOCOL_VERSION = 1
#: command -> whether it names a shard
COMMANDS: dict[str, bool] = {
    "status": False,
    "reload": False,
    "stop": True,
    "start": True,
    "restart": True,
}
MAX_REQUEST_BYTES = 4096
MAX_REPLY_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 5.0
#: how long a connection waits for the main loop's answer
REPLY_TIMEOUT_S = 15.0
MAX_CONNECTIONS = 8
#: sun_path holds 108 bytes with its terminating NUL
MAX_PATH_BYTES = 107


class ControlError(Exception):
    """The control socket cannot be used (the message says why and what to do)."""


def socket_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / SOCKET_NAME


def check_socket_file(path: Path) -> None:
    """Refuse a control socket file that is not a socket, not ours, or not mode 0600."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ControlError(
            f"no control socket at {path}: is the supervisor running with this state_dir?"
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot reach the control socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} is not a socket: refusing to use it")
    me = os.geteuid()
    if st.st_uid != me:
        raise ControlError(
            f"{path} belongs to uid {st.st_uid}, not to this user (uid {me}): refusing to use "
            "it; run as the supervisor's user"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o600:
        raise ControlError(
            f"{path} has mode {mode:04o}, not 0600: refusing to use it (another user could "
            "control the keeper through it); stop the supervisor, remove the file, start again"
        )


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (``SO_PEERCRED``)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def parse_request(line: bytes) -> tuple[str, str | None]:
    """(command, shard) from a request line; ValueError with the reason."""
    try:
        doc = json.loads(line)
    except ValueError:
        raise ValueError("the request is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("the request is not a JSON object")
    if doc.get("v") != PROTOCOL_VERSION:
        raise ValueError(f"unsupported protocol version {doc.get('v')!r}")
    extra = set(doc) - {"v", "command", "shard"}
    if extra:
        raise ValueError(f"unknown request fields {sorted(extra)}")
    command, shard = doc.get("command"), doc.get("shard")
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    if COMMANDS[command]:
        if not isinstance(shard, str) or not shard:
            raise ValueError(f"{command} needs a shard name")
    elif shard is not None:
        raise ValueError(f"{command} takes no shard")
    return command, shard


@dataclass(slots=True)
class Request:
    """One request, answered by the main loop (``reply``, then ``done``)."""

    command: str
    shard: str | None
    reply: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def answer(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.done.set()


def _remove_stale(path: Path) -> None:
    """Remove a socket file left by a supervisor that died; refuse anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} exists and is not a socket: not replacing it")
    if st.st_uid != os.geteuid():
        raise ControlError(f"{path} belongs to uid {st.st_uid}: not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # nobody listens: left by a supervisor that died
        return
    except OSError as exc:
        raise ControlError(f"{path}: cannot tell whether a supervisor uses it: {exc}") from None
    finally:
        probe.close()
    raise ControlError(
        f"another supervisor is listening on {path}: two supervisors may not share a "
        "state_dir (stop it, or give this one its own state_dir)"
    )


def bind_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from the moment it exists.

    Call it while the process has one thread: the umask is process-wide.
    """
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ControlError(
            f"control socket path {path} is longer than {MAX_PATH_BYTES} bytes: "
            "use a shorter supervisor.state_dir"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot create the control socket {path}: {exc}") from None
    finally:
        os.umask(old)
    try:
        check_socket_file(path)
    except ControlError:
        sock.close()
        raise
    sock.listen(16)
    return sock


class ControlServer:
    """Accepts ``sorotask ctl`` connections; hands each request to ``submit`` (which queues it
    for the main loop) and sends back the reply the main loop gives it."""

    def __init__(self, path: Path, submit: Callable[[Request], None]) -> None:
        self.path = path
        self.submit = submit
        self._sock = bind_socket(path)
        self._inode = os.stat(path).st_ino
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="sorotask-control")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and remove the socket file (if it is still ours)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                self._send(conn, {"ok": False, "error": "busy: too many control connections"})
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT_S)
                self._send(conn, self._answer(conn))
        finally:
            self._slots.release()

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        uid, me = peer_uid(conn), os.geteuid()
        try:  # read the request even from a peer refused below, so it gets a clean answer
            line, problem = self._read_line(conn), None
        except (ValueError, OSError) as exc:
            line, problem = b"", exc
        if uid != me:
            logger.warning("control: refused a connection from uid {} (only uid {})", uid, me)
            return {
                "ok": False,
                "error": f"refused: uid {uid} may not control this supervisor (uid {me} only)",
            }
        try:
            if problem is not None:
                raise problem
            command, shard = parse_request(line)
        except (ValueError, OSError) as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        request = Request(command, shard)
        if self._closed.is_set():
            return {"ok": False, "error": "the supervisor is exiting"}
        self.submit(request)
        if not request.done.wait(REPLY_TIMEOUT_S) or request.reply is None:
            return {"ok": False, "error": f"no answer from the main loop in {REPLY_TIMEOUT_S:g}s"}
        return request.reply

    @staticmethod
    def _read_line(conn: socket.socket) -> bytes:
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(MAX_REQUEST_BYTES)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_REQUEST_BYTES:
                raise ValueError(f"request over {MAX_REQUEST_BYTES} bytes")
        return buf.split(b"\n", 1)[0]

    @staticmethod
    def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(encode(reply))


def call(path: Path, command: str, shard: str | None = None, timeout: float = 30.0) -> Any:
    """Send one request to the supervisor at ``path``; its reply (ControlError if it cannot)."""
    check_socket_file(path)
    request: dict[str, Any] = {"v": PROTOCOL_VERSION, "command": command}
    if shard is not None:
        request["shard"] = shard
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(encode(request))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_REPLY_BYTES:
                    raise ControlError("the reply is too large")
        except OSError as exc:
            raise ControlError(f"cannot talk to the supervisor at {path}: {exc}") from None
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ControlError(f"the supervisor at {path} sent no valid reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the supervisor at {path} sent no valid reply")
    return reply
