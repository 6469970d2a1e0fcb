"""The tests' own locked-down Redis and PostgreSQL: real servers, started by a test and
stopped by their PIDs, that demand what production's should — credentials, an ACL, TLS.

Certificates come from a throwaway CA (`trustme`) made for the run. Redis listens twice:
a plain port and a TLS port that also asks for a client certificate; its `default` user
has a `requirepass`, and the gateway's user is held by the ACL line the README gives
(`GATEWAY_ACL`, read from docs/security.md). PostgreSQL runs from a fresh `initdb` with `ssl = on`, accepting TCP only
over TLS and only with a SCRAM password.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.helpers import ROOT, free_port

START_SECONDS = 30.0
SECURITY_PAGE = ROOT / "docs" / "security.md"


def documented_acl() -> str:
    """The ACL rules docs/security.md gives for the gateway's Redis user, with `{password}`
    and `{namespace}` (the key and channel prefix, `<namespace>:v1`) to fill in: the tests
    run exactly the documented line."""
    page = SECURITY_PAGE.read_text(encoding="utf-8")
    found = re.search(r"<!-- redis-acl -->\n```text\nACL SETUSER balance-gateway (.*)\n```", page)
    assert found is not None, "docs/security.md lost its Redis ACL line"
    rules = found.group(1)
    assert ">CHANGE-ME" in rules and "~balance-gateway:v1:*" in rules, rules
    assert "&balance-gateway:v1:*" in rules, rules  # its channels: the same prefix
    return (
        rules.replace(">CHANGE-ME", ">{password}")
        .replace("~balance-gateway:v1:*", "~{namespace}:*")
        .replace("&balance-gateway:v1:*", "&{namespace}:*")
    )


GATEWAY_ACL = documented_acl()


@dataclass(frozen=True)
class Certificates:
    folder: Path
    ca: Path  # the CA's certificate: what clients trust
    server_cert: Path  # for 127.0.0.1 and localhost, with its chain
    server_key: Path
    client_cert: Path
    client_key: Path


def certificates(folder: Path) -> Certificates:
    """A new CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("balance-gateway@tests")
    paths = Certificates(
        folder,
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(paths.server_cert), append=True)
    server.private_key_pem.write_to_path(str(paths.server_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}):\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} within {START_SECONDS} s:\n{log.read_text()}")


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`argv` in its own process group, its output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class LockedRedis:
    port: int  # plain TCP
    tls_port: int  # TLS, a client certificate required
    admin_password: str  # the `default` user's requirepass
    user: str  # the gateway's ACL user
    password: str
    namespace: str  # the gateway's key prefix (its [cache] namespace)
    certs: Certificates

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"


@contextmanager
def locked_redis(
    redis_server: str, folder: Path, namespace: str, admin_password: str | None = None
) -> Iterator[LockedRedis]:
    """A `redis-server` of the test's own, stopped by its PID when the block ends; its
    `default` user's password `admin_password` (none given: a random one)."""
    certs = certificates(folder / "tls")
    redis = LockedRedis(
        free_port(),
        free_port(),
        admin_password or secrets.token_hex(16),
        "balance-gateway",
        secrets.token_hex(16),
        namespace,
        certs,
    )
    acl = GATEWAY_ACL.format(password=redis.password, namespace=f"{namespace}:v1")
    config = folder / "redis.conf"
    config.write_text(
        f"""bind 127.0.0.1
port {redis.port}
tls-port {redis.tls_port}
tls-cert-file {certs.server_cert}
tls-key-file {certs.server_key}
tls-ca-cert-file {certs.ca}
tls-auth-clients yes
requirepass {redis.admin_password}
user {redis.user} {acl}
save ""
appendonly no
dir {folder}
"""
    )
    log = folder / "redis.log"
    process = _spawn([redis_server, str(config)], log)
    try:
        _wait_for_port(redis.port, process, log)
        _wait_for_port(redis.tls_port, process, log)
        yield redis
    finally:
        _stop(process)


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    user: str
    password: str
    certs: Certificates

    def url(self, host: str = "127.0.0.1") -> str:
        return f"postgresql://{self.user}@{host}:{self.port}/postgres"


@contextmanager
def tls_postgres(bin_dir: Path) -> Iterator[TlsPostgres]:
    """A PostgreSQL of the test's own from a fresh `initdb`: TCP only over TLS and with a
    SCRAM password (pg_hba.conf), its superuser on a Unix socket only. Run as `postgres`
    when the tests run as root (the server refuses root). Stopped by its PID."""
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="bgw-pg-"))  # not under pytest's root-only tmp
    try:
        certs = certificates(folder / "tls")
        database = TlsPostgres(free_port(), "balance_gateway", secrets.token_hex(16), certs)
        if as_root:
            shutil.chown(folder, "postgres")
            for path in (certs.folder, *certs.folder.iterdir()):
                shutil.chown(path, "postgres")
        certs.server_key.chmod(0o600)
        run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
        data = folder / "data"
        subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            f"hostssl all {database.user} 127.0.0.1/32 scram-sha-256\n"
            "host all all 0.0.0.0/0 reject\n"
        )
        log = folder / "postgres.log"
        argv = [
            *run_as,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(database.port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={certs.server_cert}",
            "-c",
            f"ssl_key_file={certs.server_key}",
            "-c",
            "fsync=off",
        ]
        process = _spawn(argv, log)
        try:
            _wait_for_port(database.port, process, log)
            _create_role(folder, database)
            yield database
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _create_role(socket_dir: Path, database: TlsPostgres) -> None:
    import psycopg

    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            admin = psycopg.connect(
                host=str(socket_dir),
                port=database.port,
                user="postgres",
                dbname="postgres",
                autocommit=True,
            )
            break
        except psycopg.OperationalError:  # still starting up
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with admin:
        admin.execute(
            f"CREATE ROLE {database.user} LOGIN PASSWORD '{database.password}'"  # test-made
        )
        admin.execute(f"GRANT ALL ON SCHEMA public TO {database.user}")
