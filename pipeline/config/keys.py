"""How a configuration key is declared: its documented default, and the error a bad value raises.

Every section module declares its keys with ``doc`` so that ``fireplot
validate --defaults`` (``describe``) can print each key with its meaning.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot be used, with the key that is wrong."""


def doc(text: str, default: Any) -> Any:
    """A dataclass field with ``default`` and the sentence ``describe`` prints for it."""
    return field(default=default, metadata={"doc": text})
