"""`doctor`: read-only checks against the failure modes that lose or delay data on AWS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    reason: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "reason": self.reason,
                "fix": self.fix}
