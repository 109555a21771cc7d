"""The test hook ``SOROTASK_TEST_KEEPER``: which stand-in keeper a shard's worker runs in tests.

Unset in production. It may name only functions of ``tests.support.stand_ins`` (see
docs/supervisor.md, "Test hook").
"""

from __future__ import annotations

TEST_KEEPER_ENV = "SOROTASK_TEST_KEEPER"
TEST_KEEPER_MODULE = "tests.support.stand_ins"


def keeper_entries_from_env(value: str | None) -> dict[str, str]:
    """Parse the test hook ``SOROTASK_TEST_KEEPER``: ``module:fn`` or ``shard=module:fn;...``.

    It selects a stand-in keeper (see :mod:`tests.support.stand_ins`) for tests and chaos
    runs; ``*`` means every shard. Unset in production. Only functions of
    ``tests.support.stand_ins`` can be named: an environment variable must not be a way to
    make workers import and run arbitrary code (ValueError otherwise).
    """
    out: dict[str, str] = {}
    if not value:
        return out
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            name, _, entry = part.partition("=")
            name, entry = name.strip(), entry.strip()
        else:
            name, entry = "*", part
        module, _, func = entry.partition(":")
        if module != TEST_KEEPER_MODULE or not func.isidentifier():
            raise ValueError(
                f"{TEST_KEEPER_ENV} may name only {TEST_KEEPER_MODULE}:FUNCTION stand-ins, "
                f"got {entry!r}"
            )
        out[name] = entry
    return out
