"""A TCP proxy on 127.0.0.1 that delays every chunk by half a round trip, each way.

It stands for the link between a Pi and its AWS region (as `tc qdisc ... netem delay` would,
without root): a request costs one round trip however many bytes it carries, and order within
a connection is kept. It forwards only to a loopback upstream.

    with SlowLink(upstream_port, rtt=0.02) as link:
        ... AWS_ENDPOINT_URL=link.url ...
"""

import asyncio
import socket
import threading
import time


class SlowLink:
    def __init__(self, upstream_port, rtt):
        self.upstream_port, self.delay = upstream_port, rtt / 2
        self.loop, self.port = None, None
        self._ready = threading.Event()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow link did not start")
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self._thread.join(10)

    async def _shutdown(self):
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.call_soon(self.loop.stop)

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _connection(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        for writer in (client_writer, upstream_writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer),
                                 self._pipe(upstream_reader, client_writer))
        except asyncio.CancelledError:
            pass  # shutting down: asyncio's stream server can't take a cancelled handler

    async def _pipe(self, reader, writer):
        """Forward each chunk `delay` seconds after it arrived, in order."""
        queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    break
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError, asyncio.CancelledError):
            sender.cancel()
        finally:
            writer.close()
