"""loguru set-up shared by the supervisor and its workers.

One file per shard (``<log_dir>/<shard>.log``) and one for the supervisor
(``<log_dir>/supervisor.log``), size rotation and retention, optional JSON lines. Every record
carries ``extra.shard``. Stack traces are written without variable values (``diagnose=False``)
and anything shaped like a Stellar secret seed is redacted from messages, as a second line of
defence behind "never log a secret".
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

SECRET_RE = re.compile(r"S[A-Z2-7]{55}")
TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {extra[shard]} | {message}"


@dataclass(frozen=True, slots=True)
class LogSettings:
    log_dir: str
    level: str = "INFO"
    json: bool = False
    rotation_mb: float = 10.0
    retention: int = 5

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_dir": self.log_dir,
            "level": self.level,
            "json": self.json,
            "rotation_mb": self.rotation_mb,
            "retention": self.retention,
        }


def redact(text: str) -> str:
    """Replace anything shaped like a Stellar secret seed."""
    return SECRET_RE.sub("S***REDACTED***", text)


def _patch(record: Any) -> None:
    record["message"] = redact(record["message"])
    record["extra"].setdefault("shard", "-")


def log_path(log_dir: str | Path, name: str) -> Path:
    return Path(log_dir) / f"{name}.log"


def configure(
    settings: LogSettings, name: str, *, stderr: bool, stderr_level: str = "INFO"
) -> None:
    """Send this process's loguru records to ``<log_dir>/<name>.log`` (and maybe stderr)."""
    Path(settings.log_dir).mkdir(parents=True, exist_ok=True)
    logger.remove()
    logger.configure(extra={"shard": name}, patcher=_patch)
    logger.add(
        log_path(settings.log_dir, name),
        level=settings.level,
        format=TEXT_FORMAT,
        rotation=int(settings.rotation_mb * 1024 * 1024),
        retention=settings.retention,
        serialize=settings.json,
        backtrace=False,
        diagnose=False,
        enqueue=False,
        encoding="utf-8",
    )
    if stderr:
        logger.add(
            sys.stderr,
            level=stderr_level,
            format=TEXT_FORMAT,
            backtrace=False,
            diagnose=False,
            colorize=False,
        )
