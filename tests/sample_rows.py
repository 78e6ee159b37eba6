"""Rows of a large test file whose fate is known in advance: shared by the processor's
large-file tests and the end-to-end one, so both check the same rule."""

from __future__ import annotations

TS = "2024-08-09T12:34:56Z"


def rows(n: int, prefix: str) -> tuple[list[dict[str, str]], set[str], set[int]]:
    """n rows and (over-threshold ids, invalid row numbers): every 97th row invalid (amount
    0), every other 101st over the threshold (1500.00 > 1000)."""
    out, big, bad = [], set(), set()
    for i in range(1, n + 1):
        amount = "0" if i % 97 == 0 else ("1500.00" if i % 101 == 0 else f"{i % 900 + 1}.25")
        out.append({"transaction_id": f"{prefix}-{i}", "amount": amount, "timestamp": TS})
        if i % 97 == 0:
            bad.add(i)
        elif i % 101 == 0:
            big.add(f"{prefix}-{i}")
    return out, big, bad
