"""graphql-core internals the planned completion builds on (held to 3.3.x).

`FastCompletionContext` overrides `collect_and_execute_subfields` and calls
`collect_subfields` of graphql-core's `ExecutionContext` — methods its docs do not
promise — and types their field groups with `FieldDetailsList`, from a module graphql-core
does not re-export. `HOOKS` names each method with the parameters the override relies on.
"""

from __future__ import annotations

from graphql.execution.collect_fields import FieldDetailsList

__all__ = ["HOOKS", "FieldDetailsList"]

HOOKS: dict[str, tuple[str, ...]] = {
    "collect_and_execute_subfields": (
        "return_type",
        "field_details_list",
        "path",
        "result",
        "position_context",
    ),
    "collect_subfields": ("return_type", "field_details_list"),
}
