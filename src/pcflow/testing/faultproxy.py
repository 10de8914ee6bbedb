"""A fault-injecting HTTPS proxy for tests: Azurite, but with resets and 503s.

It terminates TLS with the sandbox's server certificate, reads one HTTP/1.1 request, and
then either answers 503, resets the connection (before forwarding, or halfway through the
response), or forwards the request to the upstream server over verified TLS and streams the
answer back. Each connection carries one request (`Connection: close` both ways), which keeps
framing trivial. Faults are drawn from a seeded RNG, so a run's fault pattern is repeatable.
`latency` adds a fixed delay before every forwarded request: a WAN-like round trip on loopback
(tc netem needs kernel modules this machine lacks); it also spreads a run out so that a test
can kill it midway.

    with FaultProxy(upstream_port=10000, certs=sandbox_certs_dir, rate=0.1) as proxy:
        os.environ["PCFLOW_AZURE_ACCOUNT_HOST"] = f"127.0.0.1:{proxy.port}/{{account_name}}"
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import struct
import threading
from collections import Counter
from pathlib import Path


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        certs: str | Path,
        rate: float = 0.1,
        seed: int = 1,
        faults: tuple[str, ...] = ("503", "reset_before", "reset_mid_response"),
        upstream_host: str = "127.0.0.1",
        latency: float = 0.0,
    ):
        certs = Path(certs)
        self.upstream = (upstream_host, upstream_port)
        self.rate = rate
        self.latency = latency
        self.faults = faults
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ctx.load_cert_chain(certs / "server.pem", certs / "server-key.pem")
        self.client_ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._server:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.server_ctx)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    # -- one connection, one request --------------------------------------------------------------

    def _draw(self) -> str | None:
        if self.faults and self.rng.random() < self.rate:
            return self.rng.choice(self.faults)
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        aborted = False
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.counts["requests"] += 1
            fault = self._draw()
            if fault:
                self.counts[fault] += 1
            if fault == "503":
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"x-ms-error-code: ServerBusy\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
            if fault == "reset_before":
                _reset(writer)
                aborted = True
                return
            if fault == "slow":
                await asyncio.sleep(1.0)
            if self.latency:
                await asyncio.sleep(self.latency)
            up_r, up_w = await asyncio.open_connection(
                *self.upstream, ssl=self.client_ctx, server_hostname=self.upstream[0]
            )
            try:
                up_w.write(request)
                await up_w.drain()
                sent = 0
                while True:
                    data = await up_r.read(65536)
                    if not data:
                        break
                    if fault == "reset_mid_response" and sent + len(data) > 64:
                        writer.write(data[: max(1, len(data) // 2)])
                        await writer.drain()
                        _reset(writer)
                        aborted = True
                        return
                    writer.write(data)
                    await writer.drain()
                    sent += len(data)
            finally:
                up_w.close()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            aborted = True
            writer.transport.abort()
        finally:
            if not aborted:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 - the client may be gone already
                    pass


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport = writer.transport
    transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One full HTTP/1.1 request, with `Connection: close` forced."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head[:-4].split(b"\r\n")
    headers = [
        ln for ln in lines[1:] if not ln.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    length = 0
    chunked = False
    for ln in headers:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            data = await reader.readexactly(size + 2)
            parts.append(size_line + data)
            if size == 0:
                break
        body = b"".join(parts)
    elif length:
        body = await reader.readexactly(length)
    new_head = b"\r\n".join([lines[0], *headers, b"Connection: close"]) + b"\r\n\r\n"
    return new_head + body
