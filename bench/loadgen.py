"""Asyncio load generator on httpx: closed loops (fixed concurrency) and open loops (fixed arrival rate)."""
import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from workload import percentile

# One request: given the client, send it and return the response.
Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Results:
    """Latencies (seconds) and failures per endpoint, plus what the caller wants kept from responses."""

    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    created_ids: list[int] = field(default_factory=list)

    def record(self, name: str, began: float, response: httpx.Response | None, error: str = "") -> None:
        if response is not None and response.is_success:
            self.latencies[name].append(time.monotonic() - began)
            if response.status_code == 201:
                self.created_ids.append(response.json()["id"])
        else:
            self.errors[name].append(error or f"HTTP {response.status_code}: {response.text[:200]}")

    def lines(self) -> list[str]:
        duration = self.ended - self.started
        out = []
        for name in sorted(self.latencies.keys() | self.errors.keys()):
            ms = [t * 1e3 for t in self.latencies[name]] or [float("nan")]
            errors = self.errors[name]
            out.append(
                f"{name:<28} {len(self.latencies[name]) / duration:7.1f} req/s  p50 {percentile(ms, 50):6.1f} ms  "
                f"p99 {percentile(ms, 99):6.1f} ms  max {max(ms):6.1f} ms  errors {len(errors)}"
                + (f" ({', '.join(f'{kind} x{n}' for kind, n in Counter(e.split(':')[0] for e in errors).items())})"
                   if errors else "")
            )
        return out

    def rate(self, name: str) -> float:
        return len(self.latencies[name]) / (self.ended - self.started)

    def p(self, name: str, q: float) -> float:
        return percentile(self.latencies[name], q) * 1e3


def _client(token: str, base_url: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(30.0),
    )


async def _send(client: httpx.AsyncClient, results: Results, name: str, request: Request, began: float) -> None:
    try:
        response = await request(client)
    except httpx.HTTPError as exc:
        results.record(name, began, None, f"{type(exc).__name__}: {exc}")
    else:
        results.record(name, began, response)


async def closed_loop(token: str, base_url: str, mix: list[tuple[str, Request, int]], concurrency: int,
                      seconds: float) -> Results:
    """`concurrency` users each send, wait for the answer and send again; `mix` weights the endpoints."""
    results = Results()
    schedule = [(name, request) for name, request, weight in mix for _ in range(weight)]
    deadline = time.monotonic() + seconds

    async def user(offset: int) -> None:
        i = offset
        while time.monotonic() < deadline:
            name, request = schedule[i % len(schedule)]
            await _send(client, results, name, request, time.monotonic())
            i += 1

    async with _client(token, base_url, concurrency) as client:
        await asyncio.gather(*(user(k) for k in range(concurrency)))
    results.ended = time.monotonic()
    return results


async def open_loop(token: str, base_url: str, name: str, request: Request, rate: float, seconds: float,
                    connections: int) -> Results:
    """Requests arrive at `rate` per second whatever the latency; each latency counts from its planned start,
    so a server that falls behind shows it (no coordinated omission).

    Bounded for a server that cannot keep up: at most `connections` requests are on the wire, arrivals beyond
    two seconds' worth of backlog are dropped (counted), and stragglers are abandoned 15 s after the last one.
    """
    results = Results()
    gate = asyncio.Semaphore(connections)
    backlog: set[asyncio.Task] = set()

    async def arrive(planned: float) -> None:
        async with gate:
            await _send(client, results, name, request, planned)

    start = time.monotonic()
    async with _client(token, base_url, connections) as client:
        for i in range(int(rate * seconds)):
            planned = start + i / rate
            delay = planned - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(backlog) > 2 * rate:
                results.errors[name].append("dropped: the server fell more than 2 s behind")
                continue
            task = asyncio.create_task(arrive(planned))
            backlog.add(task)
            task.add_done_callback(backlog.discard)
        if backlog:
            _, unfinished = await asyncio.wait(backlog, timeout=15)
            for task in unfinished:
                task.cancel()
                results.errors[name].append("abandoned: no answer 15 s after the last arrival")
    results.started, results.ended = start, time.monotonic()
    return results
