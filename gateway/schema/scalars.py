"""Exact scalars: `Decimal` as a plain decimal string, `DateTime` as ISO-8601 UTC (`Z`),
`Date` as YYYY-MM-DD."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from gateway.domain import AMOUNT_INTEGER_DIGITS, FRACTION_DIGITS, fits
from gateway.errors import ClientError
from gateway.services.daily_close import parse_day


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")  # never exponent notation, never through float


# Client money, exactly: ASCII digits, an optional minus and one point with digits on both
# sides. `Decimal()` would also take "1_000", other scripts' digits, " 5 ", "5.", "1e3".
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# An instant with its zone: 2024-06-04T00:43:26Z, …T00:43:26.5+01:00, …T00:43Z.
DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def invalid(message: str) -> GraphQLError:
    """A client's bad value, literal or variable alike: graphql-core reports a GraphQLError
    as the client's mistake (VALIDATION); any other exception would be a bug (INTERNAL)."""
    return GraphQLError(message)


def parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise invalid('Decimal values are strings, e.g. "5000" or "12.50".')
    if not DECIMAL.fullmatch(value):
        raise invalid(
            f"{value[:40]!r} is not a decimal: write ASCII digits with an optional - and "
            'one point, e.g. "5000" or "12.50".'
        )
    parsed = Decimal(value)
    if not fits(parsed):
        raise invalid(
            f"Decimal values have at most {AMOUNT_INTEGER_DIGITS} digits before the point "
            f"and {FRACTION_DIGITS} after."
        )
    return parsed


def serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str) or not DATETIME.fullmatch(value):
        raise invalid(
            "DateTime values are ISO-8601 instants with a zone, e.g. 2024-06-04T00:43:26Z."
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{value!r} is not a valid instant.") from None
    if not EARLIEST <= parsed <= LATEST:
        raise invalid("DateTime values lie between 1970 and 2100.")
    return parsed


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


def parse_date(value: object) -> date:
    """A calendar day: YYYY-MM-DD only (Python's parser also takes 20240603, 2024-W23-1),
    from 1970-01-01 to 2099-12-31."""
    if not isinstance(value, str):
        raise invalid('Date values are strings, e.g. "2025-04-30".')
    try:
        return parse_day(value)
    except ClientError as exc:
        raise invalid(exc.message) from None


DateScalar = strawberry.scalar(
    name="Date",
    description="A calendar day, YYYY-MM-DD, from 1970-01-01 to 2099-12-31.",
    serialize=date.isoformat,
    parse_value=parse_date,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    Decimal: DecimalScalar,
    datetime: DateTimeScalar,
    date: DateScalar,
}
