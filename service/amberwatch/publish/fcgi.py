"""``mapserv`` as a pool of FastCGI workers that the service starts, supervises and talks to from asyncio.

Why a FastCGI client of our own (about 100 lines, :func:`fcgi_request`): PyPI has no maintained asyncio FastCGI
*client*. ``fcgisgi`` (2026) and ``fcgiproto`` (last release 2016) implement the application side (FastCGI to
ASGI/WSGI); ``fcgi-client`` is a 0.0.1 with no asyncio support. We need the FCGI_RESPONDER role only, one request
per connection (no FCGI_KEEP_CONN: a kept-alive idle connection pins a single-threaded mapserv worker).

Why the workers are started here and not by ``spawn-fcgi``: ``spawn-fcgi -F N`` forks the workers and exits, so
nobody is left to notice a dead worker. The pool does what spawn-fcgi does — binds a unix socket and hands it to
``mapserv`` as its standard input (FastCGI's FCGI_LISTENSOCK_FILENO; mapserv speaks FastCGI when fd 0 is a listening
socket) — for N processes sharing the socket, keeps their ``Popen`` handles and restarts any that exits.
The workers get the same environment as the CGI subprocess (``MAPSERVER_CONFIG_FILE``, the dead HTTP proxy,
PATH/PROJ/PG* pass-through) and die with the pool's supervisor thread or the process (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# -- protocol (FastCGI 1.0 specification, responder role) ---------------------------------------------------------

FCGI_VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
_HEADER = struct.Struct(">BBHHBx")
_MAX_CONTENT = 65535
_REQUEST_ID = 1


class FastCGIError(ConnectionError):
    """The worker closed the connection or answered something that is not FastCGI."""


def _record(kind: int, content: bytes = b"") -> bytes:
    padding = -len(content) % 8
    return _HEADER.pack(FCGI_VERSION, kind, _REQUEST_ID, len(content), padding) + content + b"\x00" * padding


def _stream(kind: int, data: bytes) -> bytes:
    """``data`` as records of at most 64 KiB, then the empty record that ends the stream."""
    chunks = [_record(kind, data[i:i + _MAX_CONTENT]) for i in range(0, len(data), _MAX_CONTENT)]
    return b"".join([*chunks, _record(kind)])


def _length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in params.items():
        k, v = name.encode("latin-1"), value.encode("utf-8", errors="surrogateescape")
        out += _length(len(k)) + _length(len(v)) + k + v
    return bytes(out)


async def fcgi_request(socket_path: Path, params: Mapping[str, str], body: bytes = b"") -> tuple[bytes, bytes]:
    """One FCGI_RESPONDER request on a new connection: (stdout, stderr) of the application (CGI output)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        begin = struct.pack(">HB5x", RESPONDER, 0)  # flags 0: the worker closes the connection after the request
        writer.write(_record(BEGIN_REQUEST, begin) + _stream(PARAMS, encode_params(params)) + _stream(STDIN, body))
        await writer.drain()
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            try:
                header = await reader.readexactly(_HEADER.size)
                version, kind, _rid, length, padding = _HEADER.unpack(header)
                content = await reader.readexactly(length + padding)
            except asyncio.IncompleteReadError as closed:
                raise FastCGIError("the FastCGI worker closed the connection mid-answer") from closed
            if version != FCGI_VERSION:
                raise FastCGIError(f"not a FastCGI record (version {version})")
            if kind == STDOUT:
                out.append(content[:length])
            elif kind == STDERR:
                err.append(content[:length])
            elif kind == END_REQUEST:
                return b"".join(out), b"".join(err)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -- the worker pool ----------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_SOCKET_NAME = re.compile(r"^mapserv-(\d+)\.sock$")


def remove_stale_sockets(directory: Path) -> list[Path]:
    """Remove ``mapserv-<pid>.sock`` files of processes that no longer exist (a killed service leaves its own)."""
    removed = []
    for path in directory.glob("mapserv-*.sock"):
        match = _SOCKET_NAME.match(path.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        except PermissionError:  # another user's live process
            continue
    return removed


class MapServerPool:
    """N ``mapserv`` FastCGI workers sharing one listening unix socket; dead workers are restarted.

    A supervisor thread of the pool starts the workers and restarts any that exits (checked every
    ``interval`` seconds, at once after :meth:`wake`). The workers are its children in the PR_SET_PDEATHSIG
    sense: they die with that thread (``stop``) or the process, never with the thread or event loop that happened
    to serve the first request. Requests that arrive while no worker is up wait in the socket's backlog.
    """

    def __init__(self, mapserv: Path, socket_path: Path, env: Mapping[str, str], workers: int = 2,
                 interval: float = 0.5):
        self.mapserv = mapserv
        self.socket_path = socket_path
        self.env = dict(env)
        self.size = max(1, workers)
        self.interval = interval
        self.restarts = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in list(self._procs) if p.poll() is None]

    @property
    def running(self) -> bool:
        return self._sock is not None

    def start(self, timeout: float = 10.0) -> None:
        """Bind the socket and start the workers (raises OSError when that is impossible)."""
        with self._lock:
            if self._sock is not None:
                return
            self.socket_path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            remove_stale_sockets(self.socket_path.parent)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(self.socket_path))
                os.chmod(self.socket_path, 0o600)
                sock.listen(128)
            except Exception:
                sock.close()
                raise
            self._sock = sock
            self._stopping.clear()
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(target=self._supervise_loop, args=(ready, failure),
                                            name="mapserv-pool", daemon=True)
            self._thread.start()
        ready.wait(timeout)
        if failure or not ready.is_set():
            self.stop()
            err = failure[0] if failure else TimeoutError("mapserv workers did not start")
            raise OSError(f"mapserv FastCGI workers did not start: {err}") from err
        log.info("mapserv FastCGI pool: %d workers on %s (pids %s)", self.size, self.socket_path, self.pids)

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self._sock is not None
        return subprocess.Popen(  # noqa: S603 - a fixed binary, no shell
            [str(self.mapserv)], stdin=self._sock.fileno(), stdout=subprocess.DEVNULL, env=self.env,
            close_fds=True, preexec_fn=_die_with_parent, start_new_session=True,
        )

    def _supervise_loop(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            self._procs = [self._spawn() for _ in range(self.size)]
        except BaseException as err:  # noqa: BLE001 - reported to start()
            failure.append(err)
            ready.set()
            return
        ready.set()
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._restart_dead()

    def _restart_dead(self) -> int:
        restarted = 0
        for i, proc in enumerate(list(self._procs)):
            code = proc.poll()
            if code is not None and self._sock is not None and not self._stopping.is_set():
                log.warning("mapserv FastCGI worker %d exited (%s): restarting it", proc.pid, code)
                try:
                    self._procs[i] = self._spawn()
                except OSError as err:
                    log.error("mapserv FastCGI worker could not be restarted: %s", err)
                    continue
                restarted += 1
        self.restarts += restarted
        return restarted

    def wake(self) -> None:
        """Ask the supervisor to check the workers now (a request found a dead one)."""
        self._wake.set()

    async def request(self, params: Mapping[str, str], body: bytes = b"") -> tuple[bytes, bytes]:
        return await fcgi_request(self.socket_path, params, body)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            self._wake.set()
            thread, self._thread = self._thread, None
            procs, self._procs = self._procs, []
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
