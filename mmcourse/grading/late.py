"""Late submissions: a deadline, per-student extensions and a penalty policy.

A policy file (TOML), passed as ``mmcourse grade ... --late-policy policy.toml``::

    deadline = "2026-12-01T23:59:00+00:00"   # ISO 8601; no zone means UTC
    penalty_per_day = 0.10                   # fraction of the points lost per started day late
    max_days_late = 3                        # later than this: the submission scores 0
    grace_minutes = 10                       # optional: uploads this close to the deadline are on time

    [extensions]                             # optional: a student's own deadline
    alice = "2026-12-03T23:59:00+00:00"
    "12345" = "2026-12-02T12:00:00+00:00"   # a Canvas user id works too

A submission ``d`` started days late (``d = ceil((submitted - deadline - grace) / 1 day)``) keeps
``max(0, 1 - penalty_per_day * d)`` of its score, and nothing past ``max_days_late``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mmcourse.grading.classroom import parse_time


@dataclass(frozen=True)
class LatePolicy:
    deadline: datetime
    penalty_per_day: float = 0.0
    max_days_late: int | None = None
    grace: timedelta = timedelta(0)
    extensions: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self):
        if not 0 <= self.penalty_per_day <= 1:
            raise ValueError(f"penalty_per_day must be a fraction in [0, 1], got {self.penalty_per_day}")
        if self.max_days_late is not None and self.max_days_late < 0:
            raise ValueError(f"max_days_late must be >= 0, got {self.max_days_late}")

    @classmethod
    def load(cls, path: Path) -> LatePolicy:
        try:
            data = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
        unknown = set(data) - {"deadline", "penalty_per_day", "max_days_late", "grace_minutes", "extensions"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected deadline, penalty_per_day, "
                             "max_days_late, grace_minutes, [extensions]")
        if "deadline" not in data:
            raise ValueError(f"{path}: a 'deadline' is required (ISO 8601, e.g. 2026-12-01T23:59:00+00:00)")
        ext = data.get("extensions", {})
        if not isinstance(ext, dict):
            raise ValueError(f"{path}: [extensions] must be a table of student = deadline")

        def as_time(value, what: str) -> datetime:   # TOML dates arrive parsed; strings too
            return parse_time(value if isinstance(value, str) else value.isoformat(), f"{path}, {what}")

        return cls(deadline=as_time(data["deadline"], "deadline"),
                   penalty_per_day=float(data.get("penalty_per_day", 0.0)),
                   max_days_late=data.get("max_days_late"),
                   grace=timedelta(minutes=float(data.get("grace_minutes", 0))),
                   extensions={str(k): as_time(v, f"extension of {k}") for k, v in ext.items()})

    def deadline_for(self, student: str) -> datetime:
        return self.extensions.get(student, self.deadline)

    def days_late(self, student: str, submitted_at: datetime | None) -> int:
        """Started days past the student's deadline (0 when on time or the time is unknown)."""
        if submitted_at is None:
            return 0
        over = submitted_at - self.deadline_for(student) - self.grace
        return max(0, math.ceil(over / timedelta(days=1)))

    def factor(self, days_late: int) -> float:
        """The fraction of the score a submission ``days_late`` days late keeps."""
        if self.max_days_late is not None and days_late > self.max_days_late:
            return 0.0
        return max(0.0, 1.0 - self.penalty_per_day * days_late)
