"""ItemIndex: external item ids (strings) <-> dense integer ids 0..n-1."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from seqrec.errors import ModelFileError, UnknownItemError

UNKNOWN = -1  # dense id given to external ids not in a frozen index


class ItemIndex:
    """Bidirectional map between external item ids and dense ids.

    External ids are always strings (``"214536502"``), so ``1`` and ``"1"`` are the
    same item whatever file they came from. Dense ids are ``0..len(index)-1`` in the
    order items were first added. Unknown ids are reported (``-1`` from
    :meth:`encode`, or :class:`UnknownItemError` from :meth:`encode_strict`), never
    mapped to another item.
    """

    def __init__(self, external_ids: Iterable[object] = ()) -> None:
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self.add(external_ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return str(item) in self._pos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemIndex) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"ItemIndex(n_items={len(self)})"

    @property
    def external_ids(self) -> list[str]:
        return list(self._ids)

    def add(self, external_ids: Iterable[object]) -> np.ndarray:
        """Add ids (new ones get the next dense ids) and return all their dense ids."""
        out = []
        for raw in external_ids:
            key = str(raw)
            pos = self._pos.get(key)
            if pos is None:
                pos = len(self._ids)
                self._pos[key] = pos
                self._ids.append(key)
            out.append(pos)
        return np.asarray(out, dtype=np.int32)

    def encode(self, external_ids: Iterable[object]) -> np.ndarray:
        """Dense ids of ``external_ids``; ids not in the index become ``UNKNOWN`` (-1)."""
        get = self._pos.get
        return np.fromiter((get(str(x), UNKNOWN) for x in external_ids), dtype=np.int32)

    def encode_strict(self, external_ids: Iterable[object]) -> np.ndarray:
        """Dense ids of ``external_ids``; raises UnknownItemError naming unknown ids."""
        ids = list(external_ids)
        dense = self.encode(ids)
        bad = [str(ids[i]) for i in np.flatnonzero(dense == UNKNOWN)]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise UnknownItemError(
                f"unknown item id(s) {shown}{more} (not in the model's catalogue)"
            )
        return dense

    def decode(self, dense_ids: Sequence[int] | np.ndarray) -> list[str]:
        """External ids of dense ids."""
        ids = self._ids
        return [ids[int(i)] for i in np.asarray(dense_ids).ravel()]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self._ids), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, what: str = "item index") -> ItemIndex:
        """Read a file written by :meth:`save`; ``what`` names the index in errors (a
        model's user index uses the same format)."""
        p = Path(path)
        try:
            ids = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(f"{p}: missing {what}") from None
        except OSError as exc:
            raise ModelFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise ModelFileError(f"{p}: corrupt {what} (not UTF-8 text)") from None
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{p}: corrupt {what} ({exc})") from None
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise ModelFileError(f"{p}: {what} must be a JSON list of strings")
        index = cls(ids)
        if len(index) != len(ids):
            raise ModelFileError(f"{p}: {what} has duplicate ids")
        return index
