"""The warm-up before each measured run of scripts/bench, run inside mtls-bench-load with the
container's own python3 (standard library only):

    python3 - HOST PORT CONNECTIONS SECONDS < warmup.py

CONNECTIONS kept-alive HTTP/1.1 connections send GET requests for SECONDS, then each finishes
the request it has in flight before it closes. That ending is the point: wrk stops by closing
its connections under requests still in flight, and nginx closes the upstream connection of
every request its client abandoned, so a warm-up by wrk would empty the proxy tier's keep-alive
pool just before the measured run. Prints one JSON object: requests, non-200 answers, errors."""

import asyncio
import json
import sys
import time


async def one_response(reader):
    """Reads one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, dummy, value = line.partition(":")
        headers[key.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    else:
        await reader.read()
        return status, False
    return status, headers.get("connection") != "close" and lines[0].startswith("HTTP/1.1")


async def client(host, port, deadline, counts):
    request = ("GET /warmup HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode()
    writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            status, keep_alive = await one_response(reader)
            counts["requests"] += 1
            if status != 200:
                counts["non_200"] += 1
            if not keep_alive:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            counts["errors"] += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(0.05)
    # Only now, with no request in flight: the proxy keeps its upstream connection idle.
    if writer is not None:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def main(host, port, connections, seconds):
    counts = {"requests": 0, "non_200": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client(host, port, deadline, counts) for dummy in range(connections)))
    return counts


if __name__ == "__main__":
    HOST, PORT, CONNECTIONS, SECONDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(main(HOST, PORT, CONNECTIONS, SECONDS))))
