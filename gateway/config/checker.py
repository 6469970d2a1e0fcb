"""Reading one TOML mapping while collecting every problem (location, message, fix).

Typed getters return a default when the value is wrong, so parsing goes on and the
operator sees all problems at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.secret import Secret
from gateway.errors import Problem


class Checker:
    """Collects problems while reading one mapping; typed getters return a default on error."""

    def __init__(self, env: Mapping[str, str], base: Path | None = None) -> None:
        self.env = env
        self.base = base or Path.cwd()
        self.problems: list[Problem] = []

    def path(self, value: str) -> Path:
        """A path from the file: relative ones are relative to the config file's folder,
        never to the working directory (operators run commands from anywhere)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def add(self, location: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(location, message, fix))

    def table(self, data: Mapping[str, Any], key: str, location: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.add(location, "must be a table", f"write it as [{location}]")
            return {}
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], location: str) -> None:
        for key in sorted(set(data) - allowed):
            self.add(
                f"{location}.{key}" if location else key,
                "unknown key",
                "remove it, or check the spelling against docs/configuration.md",
            )

    def string(self, data: Mapping[str, Any], key: str, location: str, default: str = "") -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.add(f"{location}.{key}", "must be a string", f'write {key} = "…"')
            return default
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        location: str,
        default: float,
        high: float,
        *,
        zero: bool = False,
    ) -> float:
        value = data.get(key, default)
        ok = not isinstance(value, bool) and isinstance(value, int | float)
        if not ok or not (0 < value <= high or (zero and value == 0)):
            lowest = "at least" if zero else "above"
            self.add(
                f"{location}.{key}",
                f"must be a number {lowest} 0 and at most {high}",
                f"for example {key} = {default}",
            )
            return default
        return float(value)

    def whole(
        self,
        data: Mapping[str, Any],
        key: str,
        location: str,
        default: int | None,
        high: int,
        *,
        zero: str = "",
    ) -> int | None:
        """A whole number from 1 to `high` — or from 0, when `zero` says what 0 means."""
        value = data.get(key, default)
        if value is None:
            return None
        lowest = 0 if zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= high:
            self.add(
                f"{location}.{key}",
                f"must be a whole number from {lowest}{f' ({zero})' if zero else ''} to {high}",
                f"for example {key} = {default or 1}",
            )
            return default
        return value

    def boolean(self, data: Mapping[str, Any], key: str, location: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.add(
                f"{location}.{key}", "must be true or false", f"{key} = {str(default).lower()}"
            )
            return default
        return value

    def choice(
        self, data: Mapping[str, Any], key: str, location: str, choices: tuple[str, ...]
    ) -> str:
        """One of `choices` (the first is the default)."""
        value = data.get(key, choices[0])
        if value not in choices:
            self.add(
                f"{location}.{key}",
                f"must be one of {', '.join(repr(c) for c in choices)}",
                f'for example {key} = "{choices[0]}"',
            )
            return choices[0]
        return str(value)

    def secret(self, value: Any, location: str, development: bool) -> Secret | None:
        if not isinstance(value, str) or not value:
            self.add(location, "must be a non-empty string", 'use "env:NAME" or "file:/path"')
            return None
        if value.startswith("env:"):
            name = value[4:]
            if name not in self.env or not self.env[name]:
                self.add(
                    location,
                    f"environment variable {name} is not set",
                    f"export {name}=… before starting",
                )
                return None
            return Secret(self.env[name])
        if value.startswith("file:"):
            try:
                return Secret(self.path(value[5:]).read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.add(
                    location,
                    f"cannot read the secret file: {exc.strerror}",
                    "check the path and its permissions",
                )
                return None
        if not development:
            self.add(
                location,
                "inline secrets are refused outside the development profile",
                'use "env:NAME" or "file:/path"',
            )
            return None
        return Secret(value)
