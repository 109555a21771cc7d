"""The devnet's resource-fee model: deterministic, in the same ballpark as testnet.

Simulation returns ``minResourceFee = resource_fee(resources)`` for the resources it measured;
sendTransaction rejects a transaction whose declared resource fee is below the fee of the
resources it declares (txINSUFFICIENT_FEE).
"""

from __future__ import annotations

#: instructions reported for one contract invocation, plus per nested call
BASE_INSTRUCTIONS = 2_000_000
CALL_INSTRUCTIONS = 500_000


def resource_fee(
    *, instructions: int, read_entries: int, write_entries: int, read_bytes: int, write_bytes: int
) -> int:
    return (
        1_000
        + (instructions + 9_999) // 10_000 * 25
        + read_entries * 1_000
        + write_entries * 5_000
        + read_bytes * 2
        + write_bytes * 12
    )
