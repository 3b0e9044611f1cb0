"""The one JSON wrapper: orjson everywhere, so bytes in and bytes out."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["JSONDecodeError", "dumps", "dumps_str", "loads"]

JSONDecodeError = orjson.JSONDecodeError

_OPTS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any, *, sort_keys: bool = False, indent: bool = False) -> bytes:
    """Serialize to UTF-8 JSON bytes."""
    opts = _OPTS
    if sort_keys:
        opts |= orjson.OPT_SORT_KEYS
    if indent:
        opts |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, option=opts)


def dumps_str(obj: Any, *, sort_keys: bool = False, indent: bool = False) -> str:
    """Serialize to a JSON str."""
    return dumps(obj, sort_keys=sort_keys, indent=indent).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises JSONDecodeError (a ValueError) on bad input."""
    return orjson.loads(data)
