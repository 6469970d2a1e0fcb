"""The operator commands as operators run them: the installed CLI, from any folder."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from gateway.services.journal import Record, open_journal
from tests.helpers import demo_text
from tests.system.processes import CLI, completed


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return completed([str(CLI), *args], cwd)


def test_topups_list_reads_the_journal_beside_the_config_from_any_folder(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    config = deploy / "demo.toml"
    config.write_text(demo_text())  # its journal: sqlite:///.data/demo-topups.db
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)

    missing = run(elsewhere, "topups", "list", "--config", str(config))
    assert missing.returncode == 2
    assert f"no top-up journal at {deploy / '.data' / 'demo-topups.db'}" in missing.stderr
    assert not (elsewhere / ".data").exists()  # nothing created where it was run

    async def record_one() -> None:
        journal = open_journal(f"sqlite:///{deploy / '.data' / 'demo-topups.db'}")
        request = {"amount": "5000", "currency": "XOF"}
        await journal.begin(
            Record(
                "dev:anonymous",
                "order-1",
                "f",
                "ourvoice-sn",
                request,
                "succeeded",
                None,
                None,
                None,
                1.0,
            )
        )
        await journal.close()

    asyncio.run(record_one())
    listed = run(elsewhere, "topups", "list", "--config", "../../deploy/demo.toml")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert row.split() == ["dev:anonymous", "order-1", "ourvoice-sn", "5000", "XOF", "succeeded"]
    # columns line up with the header whatever the values' widths
    assert header.index("key") == row.index("order-1")
    assert header.index("state") == row.index("succeeded")
