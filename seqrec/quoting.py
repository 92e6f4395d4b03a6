"""Showing user content (file bytes, ids, config values) inside one-line error messages.

A message that quotes what a file holds must never put raw control characters on the
user's terminal: a NUL, a line break (the CLI promises one ``error:`` line) or an
ANSI escape sequence from a crafted file. Every reader and the config parser quote
content through :func:`quote` (or :func:`escape` for text embedded without quotes):
printable ASCII and printable Unicode are kept, everything else is shown as ``\\t``,
``\\n``, ``\\r``, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, and long text is cut.

>>> quote("caf\\u00e9\\x1b[31m")
"'café\\\\x1b[31m'"
>>> escape("a\\x00b\\nc")
'a\\\\x00b\\\\nc'
>>> quote("x" * 100, limit=5)
"'xxxxx'... (100 characters)"
"""

from __future__ import annotations

__all__ = ["escape", "quote"]

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _char(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, limit: int | None = 200) -> str:
    """``text`` with every non-printable character escaped (a backslash stays as is),
    cut after ``limit`` characters (``...`` marks the cut; ``None``: no limit)."""
    text = str(text)
    cut = limit is not None and len(text) > limit
    part = text[:limit] if cut else text
    out = "".join(c if c.isprintable() else _char(c) for c in part)
    return out + "..." if cut else out


def quote(text: object, limit: int = 60) -> str:
    """``text`` in single quotes, escaped like a Python literal (backslashes and quotes
    too, so the shown text is unambiguous); longer than ``limit`` characters: cut, with
    the full length named."""
    text = str(text)
    part = text[:limit]
    body = "".join(
        "\\\\" if c == "\\" else "\\'" if c == "'" else c if c.isprintable() else _char(c)
        for c in part
    )
    if len(text) > limit:
        return f"'{body}'... ({len(text)} characters)"
    return f"'{body}'"
