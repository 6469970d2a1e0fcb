"""Pure helpers that read upstream JSON into exact values, or raise UpstreamBadResponse.

Numbers are parsed from the raw text as `Decimal` (never through float); NaN and Infinity
are refused; every accessor checks the JSON type it was promised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, NoReturn

from gateway.domain import AMOUNT_INTEGER_DIGITS, FRACTION_DIGITS, fits, is_known_currency
from gateway.errors import UpstreamBadResponse, UpstreamContext


class JsonReader:
    """Reads one upstream's body; every failure names the provider and account."""

    def __init__(self, context: UpstreamContext) -> None:
        self.context = context

    def fail(self, detail: str) -> NoReturn:
        raise UpstreamBadResponse(self.context, detail=detail)

    def loads(self, raw: bytes | str) -> Any:
        def refuse_constant(name: str) -> NoReturn:
            self.fail(f"non-finite number {name} in body")

        try:
            return json.loads(
                raw, parse_float=Decimal, parse_int=Decimal, parse_constant=refuse_constant
            )
        except (ValueError, RecursionError) as exc:
            self.fail(f"body is not JSON: {type(exc).__name__}")

    def object(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"{where}: expected an object, got {type(value).__name__}")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(f"{where}: expected an array, got {type(value).__name__}")
        return value

    def field(self, obj: Mapping[str, Any], name: str, where: str) -> Any:
        if name not in obj:
            self.fail(f"{where}: missing field {name!r}")
        return obj[name]

    def string(self, obj: Mapping[str, Any], name: str, where: str) -> str:
        value = self.field(obj, name, where)
        if not isinstance(value, str) or not value:
            self.fail(f"{where}.{name}: expected a non-empty string")
        return value

    def optional_string(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        if obj.get(name) is None:
            return None
        return self.string(obj, name, where)

    def number(self, obj: Mapping[str, Any], name: str, where: str) -> Decimal:
        """A JSON number (already a Decimal from `loads`), finite."""
        value = self.field(obj, name, where)
        if not isinstance(value, Decimal) or not value.is_finite():
            self.fail(f"{where}.{name}: expected a JSON number")
        return value

    def amount(
        self,
        obj: Mapping[str, Any],
        name: str,
        where: str,
        *,
        written_as: str = "number",
        negative: bool = True,
    ) -> Decimal:
        """Money, as a JSON number or (`written_as="string"`) a decimal string, inside the
        money domain (`domain.fits`); `negative=False` where the provider's model has no
        negative amounts."""
        if written_as == "string":
            value = self.decimal_string(obj, name, where)
        else:
            value = self.number(obj, name, where)
        if not fits(value):
            self.fail(
                f"{where}.{name}: outside the money domain (at most "
                f"{AMOUNT_INTEGER_DIGITS} digits before the point, {FRACTION_DIGITS} after)"
            )
        if value < 0 and not negative:
            self.fail(f"{where}.{name}: negative, which this provider's amounts never are")
        return value

    def integer(self, obj: Mapping[str, Any], name: str, where: str, high: int) -> int:
        """A whole JSON number from 0 to `high` (a count, a lifetime): never a huge one."""
        value = self.number(obj, name, where)
        if not 0 <= value <= high or value != value.to_integral_value():
            self.fail(f"{where}.{name}: expected a whole number from 0 to {high}")
        return int(value)

    def decimal_string(self, obj: Mapping[str, Any], name: str, where: str) -> Decimal:
        """A decimal written as a JSON string (`"4621.0000000"`), exact."""
        value = self.field(obj, name, where)
        if not isinstance(value, str):
            self.fail(f"{where}.{name}: expected a decimal string")
        try:
            parsed = Decimal(value.strip()) if value.strip() == value else None
        except ArithmeticError:
            parsed = None
        if parsed is None or not parsed.is_finite():
            self.fail(f"{where}.{name}: not a finite decimal")
        return parsed

    def currency(self, value: Any, where: str) -> str:
        if not is_known_currency(value):
            self.fail(f"{where}: unknown currency")
        return str(value)

    def timestamp(self, value: Any, where: str, naive_zone: tzinfo) -> datetime:
        """ISO-8601 or `YYYY-MM-DD HH:MM:SS`; a zone-less value is in `naive_zone`. → UTC."""
        if not isinstance(value, str):
            self.fail(f"{where}: expected a timestamp string")
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{where}: not a timestamp")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=naive_zone)
        return parsed.astimezone(UTC)
