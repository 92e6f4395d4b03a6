"""DataReport: what every data step read, kept and dropped.

Every row the data layer drops (short sessions, rare items, unseen test items, ...) is
counted here; nothing is dropped silently. The CLI prints ``str(report)``.

>>> r = DataReport()
>>> r.add("read", "rows", 70278)
>>> r.add("filter", "sessions shorter than 2 dropped", 12)
>>> r.get("filter", "sessions shorter than 2 dropped")
12
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple


class Entry(NamedTuple):
    stage: str  # "read", "encode", "filter", "split", ...
    what: str  # "rows", "sessions shorter than 2 dropped", ...
    count: int


@dataclass
class DataReport:
    """An ordered list of ``(stage, what, count)`` entries."""

    entries: list[Entry] = field(default_factory=list)

    def add(self, stage: str, what: str, count: int) -> None:
        self.entries.append(Entry(stage, what, int(count)))

    def extend(self, other: DataReport) -> DataReport:
        """Append the entries of ``other``; returns self (for chaining)."""
        self.entries.extend(other.entries)
        return self

    def get(self, stage: str, what: str, default: int | None = None) -> int | None:
        """Count of the last entry with this stage and description (``default`` if none)."""
        for e in reversed(self.entries):
            if e.stage == stage and e.what == what:
                return e.count
        return default

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __str__(self) -> str:
        if not self.entries:
            return ""
        width = max(len(e.stage) for e in self.entries)
        lines = ["data report:"]
        lines += [f"  {e.stage:<{width}}  {e.what}: {e.count:,}" for e in self.entries]
        return "\n".join(lines)
