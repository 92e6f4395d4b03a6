"""Cut the small real excerpt shipped in data/excerpt/ from the rsc15 session-rec sample.

Source: ``yoochoose-clicks-100k_{train_full,test}.txt`` of the YOOCHOOSE (RecSys
Challenge 2015) sample shipped with rn5l/session-rec, as stored in
``../shared/data/rsc15/session-rec_100k/`` (see its README for provenance and terms).

Rules (deterministic, standard library only):

* ``train.tsv``: every session of train_full whose START time (first click) is in the
  last ``--train-hours`` hours of train_full (last click time minus the window).
* ``test.tsv``: the first ``--test-sessions`` sessions of the test file by start time
  (ties: file order), keeping only clicks on items that occur in the excerpt's train,
  and then only sessions with at least 2 clicks left.
* Rows keep the original ``SessionId<TAB>ItemId<TAB>Time`` text and file order.

Usage (from the repository root)::

    python data/excerpt/make_excerpt.py            # writes data/excerpt/{train,test}.tsv
    python data/excerpt/make_excerpt.py --check    # recompute and compare, write nothing
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1].parent / "shared" / "data" / "rsc15" / "session-rec_100k"
HEADER = ["SessionId", "ItemId", "Time"]

Rows = list[list[str]]


def read_sessions(path: Path) -> OrderedDict[str, Rows]:
    """Rows grouped by session id, sessions in order of first appearance."""
    sessions: OrderedDict[str, Rows] = OrderedDict()
    with path.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        if next(reader) != HEADER:
            sys.exit(f"{path}: expected the header {HEADER}")
        for row in reader:
            sessions.setdefault(row[0], []).append(row)
    return sessions


def start(rows: Rows) -> float:
    return min(float(r[2]) for r in rows)


def cut(source: Path, train_hours: float, test_sessions: int) -> tuple[Rows, Rows]:
    train_full = read_sessions(source / "yoochoose-clicks-100k_train_full.txt")
    last = max(float(r[2]) for rows in train_full.values() for r in rows)
    cutoff = last - train_hours * 3600.0
    train = [r for rows in train_full.values() if start(rows) >= cutoff for r in rows]
    items = {r[1] for r in train}

    test_all = read_sessions(source / "yoochoose-clicks-100k_test.txt")
    order = sorted(test_all, key=lambda s: start(test_all[s]))  # stable: ties keep file order
    test: Rows = []
    for sid in order[:test_sessions]:
        kept = [r for r in test_all[sid] if r[1] in items]
        if len(kept) >= 2:
            test.extend(kept)
    return train, test


def stats(rows: Rows) -> str:
    return (
        f"{len(rows):,} events, {len({r[0] for r in rows}):,} sessions, "
        f"{len({r[1] for r in rows}):,} items"
    )


def write(path: Path, rows: Rows) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--train-hours", type=float, default=9.0)
    ap.add_argument("--test-sessions", type=int, default=400)
    ap.add_argument("--check", action="store_true", help="compare with the files in --out")
    args = ap.parse_args()
    train, test = cut(args.source, args.train_hours, args.test_sessions)
    print(f"train.tsv: {stats(train)}")
    print(f"test.tsv:  {stats(test)}")
    if args.check:
        same = all(
            (args.out / name).read_text()
            == "\t".join(HEADER) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
            for name, rows in (("train.tsv", train), ("test.tsv", test))
        )
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    write(args.out / "train.tsv", train)
    write(args.out / "test.tsv", test)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
