"""A fault-injecting TCP proxy on 127.0.0.1 (asyncio, in a background thread).

It sits in front of a loopback server (moto's S3, PostgreSQL) and, on a schedule the test sets,
adds latency, resets connections, stalls them, or cuts them after N bytes from the server.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    latency_s: float = 0.0
    reset_connections: int = 0  # the next N new connections are reset at once
    stall_connections: int = 0  # the next N new connections are accepted and never answered
    http_503_connections: int = 0  # the next N requests get "503 Slow Down" (S3's throttling)
    cut_after_bytes: int | None = None  # the next connection closes after N bytes upstream->client
    # The first connection to pass N bytes upstream->client goes silent there but stays open
    # (a read stalled in the middle of a body, until the client times out); then disarmed.
    stall_after_bytes: int | None = None
    # Once armed, every open connection is cut after N more bytes client->server in total
    # (a connection lost in the middle of a write, whatever connection the pool uses).
    cut_all_after_sent: int | None = None
    injected: dict[str, int] = field(
        default_factory=lambda: {"reset": 0, "stall": 0, "cut": 0, "stall_body": 0})


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.faults = Faults()
        self.open: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        f = self.faults
        if f.reset_connections > 0:
            f.reset_connections -= 1
            f.injected["reset"] += 1
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if f.http_503_connections > 0:
            f.http_503_connections -= 1
            f.injected["503"] = f.injected.get("503", 0) + 1
            await reader.read(65536)  # the request line and headers
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
            body += b"</Message></Error>"
            writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                         b"Connection: close\r\n\r\n" + body)
            await writer.drain()
            writer.close()
            return
        if f.stall_connections > 0:
            f.stall_connections -= 1
            f.injected["stall"] += 1
            await reader.read()  # hold it open, forward nothing, until the client gives up
            writer.close()
            return
        cut = f.cut_after_bytes
        if cut is not None:
            f.cut_after_bytes = None
            f.injected["cut"] += 1
        client_gone = asyncio.Event()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        self.open.add(writer)

        async def pipe(src, dst, limit, upstream=False):
            sent = 0
            try:
                while data := await src.read(65536):
                    if f.latency_s:
                        await asyncio.sleep(f.latency_s)
                    if upstream and f.cut_all_after_sent is not None:
                        f.cut_all_after_sent -= len(data)
                        if f.cut_all_after_sent <= 0:
                            f.cut_all_after_sent = None
                            f.injected["cut"] += 1
                            for w in list(self.open):
                                w.transport.abort()
                            break
                    if limit is not None and sent + len(data) >= limit:
                        dst.write(data[: max(0, limit - sent)])
                        break
                    stall = f.stall_after_bytes
                    if not upstream and stall is not None and sent + len(data) >= stall:
                        f.stall_after_bytes = None
                        f.injected["stall_body"] += 1
                        dst.write(data[: max(0, stall - sent)])
                        await dst.drain()
                        await client_gone.wait()  # silent, open, until the client gives up
                        break
                    dst.write(data)
                    sent += len(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if upstream:
                    client_gone.set()
                self.open.discard(writer)
                for w in (writer, up_writer):
                    w.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, None, upstream=True),
                             pipe(up_reader, writer, cut))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
