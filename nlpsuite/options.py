"""Options a task or a backend declares, set with ``--option name=value`` on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlpsuite.errors import NlpsuiteError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """A task option, set with ``--option name=value`` on the command line."""

    name: str
    type: type
    default: Any
    help: str

    def coerce(self, value: Any) -> Any:
        """Convert a command-line string (or a Python value) to this option's type."""
        if value is None or isinstance(value, self.type):
            return value
        text = str(value).strip()
        try:
            if self.type is bool:
                if text.lower() in _TRUE | _FALSE:
                    return text.lower() in _TRUE
                raise ValueError(text)
            return self.type(text)
        except ValueError:
            raise NlpsuiteError(
                f"option '{self.name}': expected {self.type.__name__}, got {value!r}"
            ) from None


def parse_key_values(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    """``("k=v", ...)`` as given to a repeatable ``flag`` (``--option``), as a dict of strings."""
    parsed = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise NlpsuiteError(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key.strip()] = value
    return parsed
