"""The command line explains itself: the top-level help names every command, and a group
named alone prints its subcommands instead of an argparse error."""

from __future__ import annotations

import pytest

from gateway.cli import main, parser


def test_the_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    for command in (
        "serve",
        "simulate",
        "check-config",
        "keys",
        "webhooks",
        "topups",
        "documents",
        "graphiql",
        "export-schema",
    ):
        assert f"    {command}" in shown, command


@pytest.mark.parametrize(
    ("group", "subcommands"),
    [
        ("keys", ["new"]),
        ("webhooks", ["secret"]),
        ("topups", ["list", "resolve"]),
        ("documents", ["manifest"]),
        ("graphiql", ["fetch"]),
    ],
)
def test_a_group_alone_prints_its_subcommands(
    group: str, subcommands: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([group]) == 0
    shown = capsys.readouterr()
    assert shown.err == ""
    for name in subcommands:
        assert f"    {name}" in shown.out
    assert parser().parse_args([group]).command == group
