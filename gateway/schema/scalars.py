"""Exact scalars: `Decimal` as a plain decimal string, `DateTime` as ISO-8601 UTC (`Z`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import strawberry
from strawberry.types.scalar import ScalarDefinition


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")  # never exponent notation, never through float


def parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('Decimal values are strings, e.g. "5000" or "12.50"')
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not parsed.is_finite():
        raise ValueError("not a finite decimal number")
    return parsed


def serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime values are ISO-8601 strings")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("DateTime values need a zone, e.g. 2024-06-04T00:43:26Z")
    return parsed.astimezone(UTC)


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number, serialized as a string. Never a float.",
    serialize=serialize_decimal,
    parse_value=parse_decimal,
)
DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="An ISO-8601 instant in UTC, e.g. 2024-06-04T00:43:26Z.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    Decimal: DecimalScalar,
    datetime: DateTimeScalar,
}
