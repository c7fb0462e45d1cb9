"""What a UID may be (PS3.5 §9.1), checked once for every path that takes one from outside.

API: `uid_problem(value) -> str` ('' when the value is a UID the store can take), `is_valid_uid(value)`.

PS3.5 §9.1: a UID is at most 64 characters, made of numeric components separated by '.', each component
at least one digit. Letters, spaces, quotes, slashes and empty components are refused: such a value can
never be a UID, and refusing it keeps a received value from ever acting as anything else (a path, a
wildcard, a query). A component with a leading zero is also forbidden by §9.1, but archives still hold
studies from modalities that wrote them; refusing those would lose real studies for no safety gain, so
they are accepted (the trailing NUL padding of the encoded value is stripped by the decoders first).
"""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def uid_problem(value: str, name: str = "UID") -> str:
    """Why `value` is not a UID ('' when it is one), in words for the user; `name` says which UID."""
    if not value:
        return f"{name} is empty"
    if len(value) > MAX_UID_LENGTH:
        return f"{name} is longer than {MAX_UID_LENGTH} characters"
    if not value.isascii() or not _UID.fullmatch(value):
        return f"{name} has characters a UID cannot have (only digits separated by single dots, PS3.5 §9.1)"
    return ""


def is_valid_uid(value: str) -> bool:
    return not uid_problem(value)
