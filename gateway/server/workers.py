"""`serve --workers N`: N processes serving one port.

The process started is the supervisor. It binds the port (so a port in use is one clear
line, and no other program takes it meanwhile) without listening on it, then forks N
workers; each binds its own socket to the same port with SO_REUSEPORT, builds its own app
and serves — the kernel spreads new connections across the workers' sockets by their
addresses (one shared socket would let whichever worker wakes first accept a whole burst).
The supervisor runs no event loop and serves nothing:

- it prints the ready banner once every worker listens (each writes a byte on a pipe);
- it passes SIGTERM and SIGINT on to every worker — each drains and stops as a single
  process does (`serving.py`) — and exits 0 once all of them exited 0;
- it replaces a worker that ends on its own (a crash), after a pause, so a worker that
  cannot start does not spin.

With `[metrics] listen` the supervisor binds that port as well, and worker 0 alone
listens on it — the bound socket it inherited, which the supervisor keeps open, so
scrapes wait rather than fail while worker 0 is replaced — answering for every worker
(`metrics_listener.py`).

Workers share only what lives outside them: with `[cache] url = "redis://…"` the cache,
single flight, upstream quotas and client rate limits are shared; with `memory://` each
worker has its own (a warning says so at start-up).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("gateway.workers")
RESPAWN_PAUSE_SECONDS = 1.0
START_SECONDS = 60.0

# worker(slot, ready): `slot` (0 to N−1) is the worker's place, kept by its replacement.
Worker = Callable[[int, Callable[[], None]], int]


def run_workers(count: int, worker: Worker, banner: str | Callable[[], None]) -> int:
    """Fork `count` processes running `worker(slot, ready)` (it calls `ready()` once it
    listens); supervise them until a signal stops them all. The exit status: 0 when every
    worker stopped cleanly."""
    return Supervisor(worker).run(count, banner)


class Supervisor:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.ready_r, self.ready_w = os.pipe()
        self.children: dict[int, int] = {}  # pid → slot
        self.stopping = False
        self.failed = False

    def run(self, count: int, banner: str | Callable[[], None]) -> int:
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)
        for slot in range(count):
            self.spawn(slot)
        if self.await_ready(count):
            if callable(banner):
                banner()
            else:
                print(banner, flush=True)
        else:
            log.error("the workers did not all start: the log above says why")
            self.failed = True
            self.forward(signal.SIGTERM, None)
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.ended(pid, os.waitstatus_to_exitcode(status))
        os.close(self.ready_r)
        os.close(self.ready_w)
        return 1 if self.failed else 0

    def spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            self.become_worker(slot)
        self.children[pid] = slot

    def become_worker(self, slot: int) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.close(self.ready_r)
        ready_w = self.ready_w

        def ready() -> None:
            os.write(ready_w, b"r")

        code = 1
        try:
            code = self.worker(slot, ready)
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def ended(self, pid: int, code: int) -> None:
        slot = self.children.pop(pid, None)
        if slot is None:
            return
        if self.stopping:
            self.failed = self.failed or code != 0
            return
        log.error("worker %d ended on its own (status %d); starting another", pid, code)
        time.sleep(RESPAWN_PAUSE_SECONDS)
        if not self.stopping:
            self.spawn(slot)

    def await_ready(self, count: int) -> bool:
        """True once `count` workers said they listen; False if one ended before."""
        seen = 0
        deadline = time.monotonic() + START_SECONDS
        while seen < count and time.monotonic() < deadline:
            readable, _, _ = select.select([self.ready_r], [], [], 0.1)
            if readable:
                seen += len(os.read(self.ready_r, count - seen))
            for pid in list(self.children):
                ended, _ = os.waitpid(pid, os.WNOHANG)
                if ended:
                    log.error("worker %d ended before it was ready", pid)
                    self.children.pop(pid)
                    return False
        return seen >= count
