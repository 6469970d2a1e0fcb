"""Pure helpers that read upstream JSON into exact values, or raise UpstreamBadResponse.

Numbers are parsed from the raw text as `Decimal` (never through float); NaN and Infinity
are refused; every accessor checks the JSON type it was promised.

Two ways in. `loads` gives plain JSON values (every number a `Decimal`) for the accessors
below. `decoder(T)` + `JsonReader.decode` read a documented body straight into `T`, a
msgspec `Struct` per documented response: msgspec checks the shape (objects, arrays,
required fields, non-empty strings) in C, and the money fields, typed `Any`, arrive as
written — a whole number as an `int`, a number with a fraction or an exponent as a
`Decimal` built from the number's own text (`float_hook`; msgspec hands it the text) — and
go through `money` (the money domain), as the accessors' amounts do. Strict JSON either
way: NaN, Infinity and malformed numbers are refused; a body off its documented shape is
UpstreamBadResponse, never an exception of the library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec

from gateway.domain import AMOUNT_INTEGER_DIGITS, FRACTION_DIGITS, fits, is_known_currency
from gateway.errors import UpstreamBadResponse, UpstreamContext

T = TypeVar("T")
# A field the docs give as a string: present, a string, not empty (`JsonReader.string`).
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# A whole number is inside the money domain when it has at most AMOUNT_INTEGER_DIGITS digits.
WHOLE_LIMIT = 10**AMOUNT_INTEGER_DIGITS
OUTSIDE = (
    f"outside the money domain (at most {AMOUNT_INTEGER_DIGITS} digits before the point, "
    f"{FRACTION_DIGITS} after)"
)


def decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """A decoder for one documented body (a Struct, a list of them, a union): numbers
    never become floats (see the module's docstring). Built once, at import, and annotated
    there with what it decodes; used through `JsonReader.decode`."""
    return msgspec.json.Decoder(type_, float_hook=Decimal)


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
        except ArithmeticError:  # an exponent past what Decimal can hold (`1e99999999999999999999`)
            self.fail("a number outside what Decimal can hold")

    def decode(self, raw: bytes | str | msgspec.Raw, into: msgspec.json.Decoder[T]) -> T:
        """`raw` as the documented type `into` decodes, or UpstreamBadResponse."""
        try:
            return into.decode(raw)
        except msgspec.ValidationError as exc:  # JSON, but not the documented shape
            self.fail(f"not the documented shape: {exc}")
        except (msgspec.DecodeError, RecursionError) as exc:
            self.fail(f"body is not JSON: {type(exc).__name__}")
        except ArithmeticError:  # from `float_hook`: an exponent past what Decimal can hold
            self.fail("a number outside what Decimal can hold")

    def money(
        self, value: Any, where: str, *, written_as: str = "number", negative: bool = True
    ) -> Decimal:
        """One amount as decoded (`loads` or `decoder`), inside the money domain: a JSON
        number (an `int` or a finite `Decimal`; never a bool, a string or a float) or, with
        `written_as="string"`, a decimal string. `negative=False` where the provider's model
        has no negative amounts."""
        if type(value) is int and written_as == "number":  # exact: its digits are the check
            if not -WHOLE_LIMIT < value < WHOLE_LIMIT:
                self.fail(f"{where}: {OUTSIDE}")
            amount = Decimal(value)
        else:
            if written_as == "string":
                amount = self.decimal_text(value, where)
            elif type(value) is Decimal and value.is_finite():
                amount = value
            else:
                self.fail(f"{where}: expected a JSON number")
            if not fits(amount):
                self.fail(f"{where}: {OUTSIDE}")
        if amount < 0 and not negative:
            self.fail(f"{where}: negative, which this provider's amounts never are")
        return amount

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
        return self.number_value(self.field(obj, name, where), f"{where}.{name}")

    def number_value(self, value: Any, where: str) -> Decimal:
        """A JSON number as decoded (`loads`: a Decimal; `decoder`: an int or a Decimal)."""
        if type(value) is int:
            return Decimal(value)
        if not isinstance(value, Decimal) or not value.is_finite():
            self.fail(f"{where}: expected a JSON number")
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
        value = self.field(obj, name, where)
        return self.money(value, f"{where}.{name}", written_as=written_as, negative=negative)

    def integer(self, obj: Mapping[str, Any], name: str, where: str, high: int) -> int:
        """A whole JSON number from 0 to `high` (a count, a lifetime): never a huge one."""
        value = self.number(obj, name, where)
        if not 0 <= value <= high or value != value.to_integral_value():
            self.fail(f"{where}.{name}: expected a whole number from 0 to {high}")
        return int(value)

    def decimal_text(self, value: Any, where: str) -> Decimal:
        if not isinstance(value, str):
            self.fail(f"{where}: expected a decimal string")
        try:
            parsed = Decimal(value.strip()) if value.strip() == value else None
        except ArithmeticError:
            parsed = None
        if parsed is None or not parsed.is_finite():
            self.fail(f"{where}: not a finite decimal")
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
