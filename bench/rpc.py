"""tocw.rpc throughput: sans-I/O dispatch, and RpcClient calls over a loopback websocket.

    .venv/bin/python bench/rpc.py [--calls 20000]

Dispatch runs in this process with no I/O. The client talks to a websockets server in a
subprocess (this script in `--serve` mode, which answers with tocw.rpc's own Dispatcher), so
the numbers are the client's: sequential calls (one round trip each), pipelined calls (all in
flight at once) and batches.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from tocw.rpc.client import RpcClient
from tocw.rpc.dispatch import Dispatcher


def echo(value: object) -> object:
    return value


DISPATCHER = Dispatcher({"echo": echo})


async def serve_forever() -> None:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            answer = await DISPATCHER.dispatch(message)
            if answer is not None:
                await ws.send(answer)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        print(f"url: ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def rate(name: str, count: int, seconds: float) -> None:
    print(f"{name:34s} {count / seconds:9.0f} calls/s  ({count} in {seconds:.2f} s)")


async def bench_dispatch(calls: int) -> None:
    text = '{"jsonrpc":"2.0","method":"echo","params":["0x00112233"],"id":1}'
    start = time.perf_counter()
    for _ in range(calls):
        await DISPATCHER.dispatch(text)
    rate("dispatch (sans-I/O)", calls, time.perf_counter() - start)


async def bench_client(url: str, calls: int) -> None:
    async with RpcClient(url) as rpc:
        n = calls // 10
        start = time.perf_counter()
        for i in range(n):
            await rpc.request("echo", [i])
        rate("client sequential", n, time.perf_counter() - start)

        start = time.perf_counter()
        results = await asyncio.gather(*(rpc.request("echo", [i]) for i in range(calls)))
        assert results == list(range(calls))
        rate("client pipelined", calls, time.perf_counter() - start)

        start = time.perf_counter()
        results = await rpc.batch([("echo", [i]) for i in range(calls)])
        assert results == list(range(calls))
        rate(f"client batches of {rpc.max_batch}", calls, time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_forever())
        return 0
    asyncio.run(bench_dispatch(args.calls))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("url: "):
            raise RuntimeError(f"server did not start (exit {proc.poll()})")
        asyncio.run(bench_client(line.removeprefix("url: ").strip(), args.calls))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
