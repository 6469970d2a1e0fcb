"""The command line: parse arguments, call the factories. Its help lists every command —
`serve`, `simulate`, `check-config`, `keys new`, `webhooks secret`, `topups list|resolve`,
`documents manifest`, `graphiql fetch`, `export-schema`, `demo reset` — and a group named
alone (`balance-gateway keys`) prints its own help."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.access import SCOPES
from gateway.clock import TEST_CLOCK_ENV, Clock, file_clock
from gateway.config.call_budgets import over_budget
from gateway.config.settings import SIMULATOR_PORT, Settings, config_path, load_settings
from gateway.config.webhook_secret import new_webhook_secret
from gateway.errors import ClientError, ConfigError
from gateway.observability import log_context, log_format
from gateway.providers.loading import spec as provider_spec
from gateway.server.auth import key_hash
from gateway.server.metrics_listener import metrics_only, private_folder, worker_metrics
from gateway.server.serving import (
    CliError,
    ConnectionLimits,
    Server,
    listening_socket,
    serve_until_stopped,
    url_of,
)
from gateway.server.workers import run_workers

log = logging.getLogger("gateway.cli")
SCHEMA_FILE = Path("schema.graphql")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def _settings(args: argparse.Namespace) -> Settings:
    port = getattr(args, "simulator_port", None) or SIMULATOR_PORT
    path = config_path(args.config, os.environ)
    return load_settings(path, simulator_port=port, providers=provider_spec)


def demo_reset(args: argparse.Namespace) -> int:
    """Forget the demo's state — its top-ups, history and alert levels (the SQLite journal
    its config names) — so the examples of the README and docs/ answer as shown again.
    Development profile and SQLite only: never a shared or production database."""
    settings = _settings(args)
    url = settings.idempotency.url
    if not settings.server.development or not url.startswith("sqlite:///"):
        raise CliError("demo reset is for the development profile's SQLite journal only")
    path = Path(url[len("sqlite:///") :])
    removed = []
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            file.unlink()
            removed.append(str(file))
    print(f"demo reset: {', '.join(removed) or 'nothing to remove'}")
    return 0


def check_config(args: argparse.Namespace) -> int:
    """Every problem (exit 2), or OK — with a warning on stderr for each account whose
    balance reads, with `--replicas` copies of this file each running its `[server]
    workers`, would exceed its daily budget (`config/call_budgets.py`); warnings leave the
    exit status 0."""
    settings = _settings(args)
    names = ", ".join(f"{a.id} ({a.provider.value})" for a in settings.accounts.values())
    print(f"configuration OK: profile {settings.server.profile}; accounts: {names}")
    processes = args.replicas * settings.server.workers
    for warning in over_budget(settings.accounts.values(), settings.cache.url, processes):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def ready_lines(settings: Settings, url: str, simulator_url: str | None, workers: int = 1) -> str:
    processes = f", {workers} workers" if workers > 1 else ""
    profile = f"{settings.server.profile} profile{processes}"
    lines = [f"Balance Gateway {__version__} ({profile}) is ready:"]
    graphql = "POST queries; open it in a browser for GraphiQL"
    lines.append(
        f"  GraphQL    {url}/graphql   ({graphql if settings.server.development else 'POST'})"
    )
    lines.append(f"  MCP        {url}/mcp   (the trusted documents as tools for AI agents)")
    lines.append(f"  dashboard  {url}/dashboard   (balances at a glance, in a browser)")
    lines.append(f"  health     {url}/healthz   (liveness), {url}/readyz (readiness)")
    metrics = "open to the no-key client" if settings.server.development else "metrics:read"
    lines.append(f"  metrics    {url}/metrics   ({metrics})")
    listener = metrics_listener_url(settings)
    if listener is not None:
        every = ", every worker's, labelled worker" if workers > 1 else ""
        lines.append(f"  metrics    {listener}   (no key: [metrics] listen{every})")
    if simulator_url is not None:
        lines.append(f"  simulator  {simulator_url}   (faults: PUT /_sim/faults/ACCOUNT)")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def metrics_listener_url(settings: Settings) -> str | None:
    listen = settings.metrics.listen
    return None if listen is None else f"{url_of(listen.host, listen.port)}/metrics"


def ready_event(
    settings: Settings, url: str, simulator_url: str | None, workers: int = 1
) -> Callable[[], None]:
    """The ready banner as one structured log event, for `[logging] format = "json"`: every
    line a container writes is then one JSON object."""
    fields = {
        "event": "ready",
        "version": __version__,
        "profile": settings.server.profile,
        "workers": workers,
        "graphql": f"{url}/graphql",
        "mcp": f"{url}/mcp",
        "dashboard": f"{url}/dashboard",
        "health": f"{url}/healthz",
        "readiness": f"{url}/readyz",
        "metrics": f"{url}/metrics",
    }
    listener = metrics_listener_url(settings)
    if listener is not None:
        fields["metrics_listener"] = listener
    if simulator_url is not None:
        fields["simulator"] = simulator_url
    return lambda: log.info("Balance Gateway is ready", extra={"fields": fields})


def announce(
    settings: Settings,
    args: argparse.Namespace,
    url: str,
    simulator_url: str | None,
    workers: int = 1,
) -> str | Callable[[], None]:
    """How the process says it is ready: the banner, or one JSON event under JSON logs."""
    if (args.log_format or settings.logging.format) == "json":
        return ready_event(settings, url, simulator_url, workers)
    return ready_lines(settings, url, simulator_url, workers)


def configure_logging(settings: Settings, args: argparse.Namespace) -> None:
    """The configuration's `[logging]`, with `--log-level` / `--log-format` winning."""
    logs = settings.logging
    log_format.configure(args.log_level or logs.level, args.log_format or logs.format, logs.levels)


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings, args)
    from gateway.app import create_app

    # Every port is bound before anything is built, so a port in use is the only line.
    workers = args.workers or settings.server.workers
    gateway_socket = listening_socket(
        args.host, args.port, "--port", "PORT", reuse_port=workers > 1
    )
    sim_socket = _simulator_socket(args)
    server = settings.server
    limits = ConnectionLimits(
        server.max_header_bytes, server.header_timeout_seconds, server.keep_alive_seconds
    )

    clock = _clock(settings)
    shared_parts_accept(settings)
    metrics_socket = _metrics_socket(settings, args.port, args.simulator_port)
    access = settings.logging.access_log

    def gateway_server(app: Any, sock: socket.socket) -> Server:
        return Server(
            app,
            sock,
            limits=limits,
            draining=app.state.draining,
            drain_seconds=server.drain_seconds,
            shutdown_timeout_seconds=server.shutdown_timeout_seconds,
        )

    if workers > 1:
        if sim_socket is not None:
            raise CliError("--simulator-port runs with one worker: drop --workers (the demo)")
        _warn_of_memory_cache(settings, workers)
        folder = private_folder() if metrics_socket is not None else None

        def worker(slot: int, ready: Callable[[], None]) -> int:
            gateway_socket.close()  # the supervisor's: bound, never listening
            try:
                sock = listening_socket(args.host, args.port, "--port", "PORT", reuse_port=True)
                app = create_app(settings, clock=clock)
                servers = [gateway_server(app, sock)]
                if metrics_socket is not None and folder is not None:
                    exposition = app.state.exposition
                    servers += worker_metrics(
                        exposition,
                        slot,
                        workers,
                        folder,
                        metrics_socket,
                        limits=limits,
                        access=access,
                    )
                serve_until_stopped(servers, ready)
            except CliError as exc:
                log.error("%s", exc)
                return 1
            return 0

        banner = announce(settings, args, url_of(args.host, args.port), None, workers)
        try:
            return run_workers(workers, worker, banner)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    app = create_app(settings, clock=clock)
    servers = [gateway_server(app, gateway_socket)]
    if metrics_socket is not None:
        listener = metrics_only(app.state.exposition, access=access)
        servers.append(Server(listener, metrics_socket, limits=limits))
    simulator_url = None
    if sim_socket is not None:
        from gateway.simulator import create_simulator

        simulator = log_context.RequestContext(create_simulator().app, quiet=True)
        servers.append(Server(simulator, sim_socket, quiet=True))
        simulator_url = url_of("127.0.0.1", args.simulator_port)
    url = url_of(args.host, args.port)
    serve_until_stopped(servers, announce(settings, args, url, simulator_url))
    return 0


def _warn_of_memory_cache(settings: Settings, workers: int) -> None:
    if settings.cache.url.startswith("memory:"):
        log.warning(
            "%d workers with [cache] url = memory://: each worker has its own cache, "
            "single flight, client rate limits and upstream quotas (so up to %d times "
            "the calls a provider allows); use redis:// to share them",
            workers,
            workers,
        )


def _metrics_socket(
    settings: Settings, port: int, simulator_port: int | None
) -> socket.socket | None:
    """`[metrics] listen`'s port, bound now (None when it is not set). Never a port this
    process binds for something else (the gateway's, the demo simulator's): two bound
    sockets on one port would both seem fine until one listens."""
    listen = settings.metrics.listen
    if listen is None:
        return None
    taken = {port: "the gateway's own port", simulator_port: "the simulator's port"}
    if listen.port in taken:
        raise CliError(
            f"[metrics] listen = {str(listen)!r} is {taken[listen.port]}: "
            "give the metrics listener a port of its own"
        )
    fix = "choose another port in [metrics] listen"
    host_fix = "check the host in [metrics] listen (an address of this machine, or its name)"
    return listening_socket(listen.host, listen.port, fix=fix, host_fix=host_fix)


def _simulator_socket(args: argparse.Namespace) -> socket.socket | None:
    """The demo's simulator's port (`--simulator-port`), bound; None without it."""
    if args.simulator_port is None:
        return None
    return listening_socket("127.0.0.1", args.simulator_port, "--simulator-port", "SIM_PORT")


def shared_parts_accept(settings: Settings) -> None:
    """Credentials Redis or PostgreSQL refuse stop the start here, in one line naming the
    settings (`CliError`), before anything is served."""
    from gateway.app import refused_by_shared_parts

    refused = asyncio.run(refused_by_shared_parts(settings))
    if refused:
        raise CliError("; ".join(refused))


def _clock(settings: Settings) -> Clock:
    """The machine's clock — or, for tests of a fleet of processes, the test clock named by
    `BALANCE_GATEWAY_TEST_CLOCK`, which the production profile refuses to start with."""
    path = os.environ.get(TEST_CLOCK_ENV)
    if not path:
        return time.time
    if not settings.server.development:
        raise CliError(f"{TEST_CLOCK_ENV} is for tests: refused under the production profile")
    log.warning(
        "time comes from the test clock in %s (%s): never in production", path, TEST_CLOCK_ENV
    )
    return file_clock(path)


def simulate(args: argparse.Namespace) -> int:
    from gateway.simulator import create_simulator

    sock = listening_socket(args.host, args.port, "--port", "SIM_PORT")
    app = log_context.RequestContext(create_simulator().app)
    url = url_of(args.host, args.port)
    ready: str | Callable[[], None] = (
        f"Provider simulator is ready: {url} (faults: PUT /_sim/faults/ACCOUNT). Ctrl-C stops."
    )
    if args.log_format == "json":
        fields = {"event": "ready", "simulator": url, "faults": f"{url}/_sim/faults"}
        ready = lambda: log.info("Provider simulator is ready", extra={"fields": fields})  # noqa: E731
    serve_until_stopped([Server(app, sock)], ready)
    return 0


def fetch_graphiql(args: argparse.Namespace) -> int:
    from gateway.server.pages import graphiql_assets

    target = Path(args.dir) if args.dir else graphiql_assets.assets_dir()
    source = graphiql_assets.registry()
    try:
        fetched = graphiql_assets.fetch(target, source)
    except graphiql_assets.AssetError as exc:
        raise CliError(str(exc)) from None
    if fetched:
        print(f"GraphiQL: fetched and verified {', '.join(fetched)} from {source} into {target}")
    else:
        print(f"GraphiQL: every pinned package is in {target} and verified")
    return 0


def documents_manifest(args: argparse.Namespace) -> int:
    """A trusted-documents manifest from a folder of `.graphql` files: each file one
    document, checked against the schema, keyed by the SHA-256 of its exact text."""
    from graphql import GraphQLError, parse, validate

    from gateway._compat.strawberry import core_schema
    from gateway.config.documents import digest
    from gateway.schema import build_schema

    folder = Path(args.dir)
    files = sorted(folder.rglob("*.graphql"))
    if not files:
        raise CliError(f"no .graphql files under {folder}")
    schema = core_schema(build_schema(development=True))  # introspection too, if asked
    manifest, problems = {}, []
    for file in files:
        document = file.read_text(encoding="utf-8")
        try:
            errors = validate(schema, parse(document))
        except GraphQLError as exc:
            errors = [exc]
        problems += [f"{file}: {error.message}" for error in errors]
        manifest[digest(document)] = document
    if problems:
        raise CliError("documents that do not run against the schema:\n" + "\n".join(problems))
    Path(args.output).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output}: {len(manifest)} documents from {folder}")
    for document_id, document in sorted(manifest.items()):
        name = next((f for f in files if f.read_text(encoding="utf-8") == document), None)
        print(f"  sha256:{document_id}  {name.relative_to(folder) if name else ''}")
    return 0


def export_schema(args: argparse.Namespace) -> int:
    from gateway.schema import sdl

    text = sdl()
    target = Path(args.output)
    if args.check:
        if not target.exists():
            print(
                f"{target.resolve()} does not exist: run this in the repository's root, "
                "or pass --output PATH",
                file=sys.stderr,
            )
            return 1
        current = target.read_text(encoding="utf-8")
        if current != text:
            print(
                f"{target} differs from the schema in code: run `balance-gateway export-schema`",
                file=sys.stderr,
            )
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def new_key(args: argparse.Namespace) -> int:
    """Print a fresh key once, and the config lines that let it in (only its hash)."""
    scopes = [s for s in args.scopes.replace(",", " ").split() if s]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        print(f"error: scopes must be among {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    accounts = [a for a in args.accounts.replace(",", " ").split() if a] or ["*"]
    key = "bgw_" + secrets.token_urlsafe(32)
    print(f"API key for {args.name} (shown once; store it in your secret manager):\n\n  {key}\n")
    print("Paste into the gateway's configuration:\n")
    print(f"[clients.{args.name}]")
    print(f'key_sha256 = "{key_hash(key)}"')
    print(f"scopes = {json.dumps(scopes)}")
    print(f"accounts = {json.dumps(accounts)}")
    return 0


def webhook_secret(args: argparse.Namespace) -> int:
    """Print a new webhook signing secret (`whsec_…`, 32 random bytes), alone on its line."""
    print(new_webhook_secret())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="balance-gateway",
        description="One GraphQL endpoint in front of the balance APIs of payment and credit "
        "providers. `balance-gateway COMMAND --help` tells more.",
    )
    root.add_argument("--version", action="version", version=f"balance-gateway {__version__}")
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="serve the gateway")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--simulator-port",
        type=int,
        default=None,
        help="also serve the provider simulator on 127.0.0.1:PORT (demo)",
    )
    p.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        help="processes serving the port (default: [server] workers, else 1)",
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, help="default: [logging] level, else info")
    p.add_argument("--log-format", choices=LOG_FORMATS, help="default: [logging] format, else text")
    p.set_defaults(run=serve)

    p = commands.add_parser("simulate", help="serve the provider simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    p.add_argument("--log-format", default="text", choices=LOG_FORMATS)
    p.set_defaults(run=simulate)

    graphiql = group(commands, "graphiql", "GraphiQL's files")
    p = graphiql.add_parser("fetch", help="fetch and verify the pinned GraphiQL packages")
    p.add_argument("--dir", help="where to keep them (default: inside the installation)")
    p.set_defaults(run=fetch_graphiql)

    documents = group(commands, "documents", "trusted documents (the operations a frontend ships)")
    p = documents.add_parser("manifest", help="build a manifest from a folder of .graphql files")
    p.add_argument("dir", help="the folder (searched recursively)")
    p.add_argument("--output", default="trusted-documents.json")
    p.set_defaults(run=documents_manifest)

    p = commands.add_parser("export-schema", help="write schema.graphql from the code")
    p.add_argument("--check", action="store_true", help="fail if the file differs instead")
    p.add_argument("--output", default=str(SCHEMA_FILE))
    p.set_defaults(run=export_schema)

    demo = group(commands, "demo", "the demo (make run)")
    p = demo.add_parser("reset", help="forget the demo's top-ups, history and alert levels")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.set_defaults(run=demo_reset)

    operator_commands(commands)
    p = commands.add_parser("check-config", help="report every problem in a config file")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.add_argument(
        "--replicas",
        type=process_count,
        default=1,
        help="replicas that will run this file (default: 1), each with its [server] workers: "
        "with memory:// every process reads the upstreams on its own, which the daily "
        "budgets must cover",
    )
    p.set_defaults(run=check_config)
    return root


Commands = argparse._SubParsersAction  # argparse's own type for `add_subparsers()`


def group(
    commands: Commands[argparse.ArgumentParser], name: str, help: str
) -> Commands[argparse.ArgumentParser]:
    """A command of subcommands; named alone, it prints its help (the subcommands)."""
    command = commands.add_parser(name, help=help, description=help)

    def show_help(args: argparse.Namespace) -> int:
        command.print_help()
        return 0

    command.set_defaults(run=show_help)
    return command.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`keys`, `webhooks`, `topups`: what operators run beside the server."""
    keys = group(commands, "keys", "client API keys")
    p = keys.add_parser("new", help="make a new client key and print its config lines")
    p.add_argument("--name", required=True, type=client_name_arg)
    p.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(SCOPES)}")
    p.add_argument("--accounts", default="*", help='comma-separated account ids, or "*"')
    p.set_defaults(run=new_key)

    webhooks = group(commands, "webhooks", "webhook endpoints")
    p = webhooks.add_parser(
        "secret", help="print a new signing secret for [webhooks.NAME] (whsec_…, 32 bytes)"
    )
    p.set_defaults(run=webhook_secret)

    reports = group(commands, "report", "reports for finance teams")
    p = reports.add_parser(
        "daily-close", help="the daily close as CSV (one row per balance), for cron"
    )
    p.add_argument(
        "--date",
        type=report_day,
        help="YYYY-MM-DD (default: each account's yesterday, in its reporting_timezone)",
    )
    p.add_argument("--accounts", help="comma-separated account ids (default: every account)")
    p.add_argument("--check", action="store_true", help="exit 3 when a balance is UNEXPLAINED")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.add_argument("--simulator-port", type=int, help="the demo's simulator port (default 8001)")
    p.set_defaults(run=report)

    top = group(commands, "topups", "recorded top-ups (operators)")
    p = top.add_parser("list", help="list recorded top-ups, newest first")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.add_argument("--pending", action="store_true", help="only those whose outcome is unknown")
    p.set_defaults(run=topups)
    p = top.add_parser("resolve", help="record the outcome of a pending top-up")
    p.add_argument("key", help="the idempotency key")
    p.add_argument("--client", required=True, help="the client that sent it")
    p.add_argument("--as", dest="outcome", required=True, choices=("succeeded", "failed"))
    p.add_argument("--by", help="who resolves it (default: your user name)")
    p.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    p.set_defaults(run=topups)


def report(args: argparse.Namespace) -> int:
    """`report daily-close`: the daily close as CSV on stdout — the same bytes as
    `GET /reports/daily-close.csv` — read through the gateway's own parts (its providers,
    its history and journal), for cron. `--check` exits 3 when a balance is UNEXPLAINED."""
    settings = _settings(args)
    return asyncio.run(_report(settings, args))


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.services.daily_close import csv_text

    clock = _clock(settings)
    day = args.date  # None: each account's own yesterday
    ids = [i for i in (args.accounts or "").split(",") if i] or list(settings.accounts)
    unknown = [i for i in ids if i not in settings.accounts]
    if unknown:
        raise CliError(f"no account {unknown[0]!r} in the config")
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        closes = await app.state.daily_close.close(day, ids)
    sys.stdout.write(csv_text(closes))
    unexplained = any(s.status.value == "UNEXPLAINED" for c in closes for s in c.statements)
    return 3 if args.check and unexplained else 0


def topups(args: argparse.Namespace) -> int:
    """Operators: list recorded top-ups, or resolve a pending one (who and when recorded)."""
    settings = _settings(args)
    url = settings.idempotency.url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        # Opening it would create an empty journal and list nothing: a wrong config file
        # must not look like "no top-ups".
        raise CliError(
            f"no top-up journal at {url[len('sqlite:///') :]}: is this the gateway's "
            "config file? (the gateway creates the journal when it starts)"
        )
    return asyncio.run(_topups(settings, args))


async def _topups(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import journal_for

    store = journal_for(settings)
    try:
        if args.topups_command == "list":
            records = await store.records(pending_only=args.pending, now=time.time())
            rows = [("client", "key", "account", "amount", "state", "resolved")]
            for r in records:
                state = "pending" if r.state == "in_flight" and args.pending else r.state
                amount = f"{r.request['amount']} {r.request['currency']}"
                resolved = f"{r.resolved_by} at {_when(r.resolved_at)}" if r.resolved_by else ""
                rows.append((r.client, r.key, r.account, amount, state, resolved))
            print(table(rows))
            return 0
        by = args.by or getpass.getuser()
        state = "succeeded" if args.outcome == "succeeded" else "failed"
        if not await store.resolve(args.client, args.key, state, by, time.time()):
            record = await store.get(args.client, args.key)
            print(
                f"error: no pending top-up {args.key!r} of client {args.client!r}"
                + (f" (it is {record.state})" if record else ""),
                file=sys.stderr,
            )
            return 1
        print(f"top-up {args.key!r} of {args.client!r} resolved as {state} by {by}")
        return 0
    finally:
        await store.close()


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, so no value breaks the alignment."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat() if at else "?"


def worker_count(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError("a whole number from 1 to 64")
    return int(value)


def process_count(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 10_000:
        raise argparse.ArgumentTypeError("a whole number from 1 to 10000")
    return int(value)


def report_day(value: str) -> date:
    from gateway.services.daily_close import parse_day

    try:
        return parse_day(value)
    except ClientError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def client_name_arg(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value):
        raise argparse.ArgumentTypeError("use lowercase letters, digits, - and _")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Request id and client name on every line, secrets redacted; uvicorn logs through it.
    log_format.configure(
        getattr(args, "log_level", None) or ("info" if args.run is serve else "warning"),
        getattr(args, "log_format", None) or "text",
    )
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
