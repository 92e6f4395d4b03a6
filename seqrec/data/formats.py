"""Names of the input formats and evaluation protocols (no heavy imports: the CLI's
``--help`` reads them without loading pyarrow)."""

from __future__ import annotations

FORMATS = (
    "tsv",
    "csv",
    "parquet",
    "sessions",
    "s3rec",
    "user-item",
    "recbole",
    "movielens",
    "taobao",
    "yoochoose-raw",
)
# formats that hold one history per user (leave-one-out protocols) rather than sessions
HISTORY_FORMATS = frozenset({"s3rec", "user-item", "recbole", "movielens"})
PROTOCOLS = ("next-item", "samples", "last-item")
