"""Wake-up hints for streams: "deployment N changed", sent after the change commits.

A hint only wakes a stream, which then reads what changed from the database; so a hint lost (Redis down, a
process that wrote without announcing) delays a follower until its next poll but never loses data. With
`REDIS_URL` set, hints go through one Redis pub/sub channel that a thread of each API process listens to
(not PostgreSQL's NOTIFY, whose every notifying commit takes a cluster-wide lock). Without Redis (the embedded
default) they stay within the process that wrote, and streams also poll every STREAM_POLL_SECONDS for writes
of other processes (`manage.py sweep`).
"""
import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

import redis
from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CHANNEL = "hypervisor:stream-hints"
# The key of streams woken by a change of any deployment (the list watch).
EVERY = 0


def announce(*deployment_ids: int) -> None:
    """Once the current transaction commits, wake the streams of these deployments (and the list watches)."""
    payload = ",".join(str(pk) for pk in deployment_ids)
    transaction.on_commit(lambda: bus().publish(payload))


class Subscription:
    """One stream's wake-up call: set by any hint for its keys, waited on by a thread or a coroutine."""

    def __init__(self, keys: Iterable[int]) -> None:
        self.keys = frozenset(keys)
        self._hinted = threading.Event()
        self._wake_loop = None

    def notify(self) -> None:
        self._hinted.set()
        wake = self._wake_loop
        if wake is not None:
            wake()

    def wait(self, seconds: float) -> None:
        """Block until a hint arrived since the last wait, or `seconds` passed."""
        self._hinted.wait(seconds)
        self._hinted.clear()

    async def wait_async(self, seconds: float) -> None:
        """The same, without holding a thread."""
        loop, woken = asyncio.get_running_loop(), asyncio.Event()
        # Set before checking the flag, so a hint that lands in between still wakes this wait.
        self._wake_loop = lambda: loop.call_soon_threadsafe(woken.set)
        try:
            if not self._hinted.is_set():
                await asyncio.wait_for(woken.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._wake_loop = None
            self._hinted.clear()


class Bus:
    """The process's hint exchange: who waits for which deployments, and the Redis listener that feeds them."""

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        # Publishing runs after a commit, inside a request or a task: an unresponsive Redis must not hold it up.
        self._client = (redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
                        if redis_url else None)
        self._waiting: dict[int, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._listening = False

    @property
    def poll_seconds(self) -> float:
        """How often a stream reads again without a hint: rarely while hints flow, often when they cannot."""
        return settings.STREAM_HEARTBEAT_SECONDS if self._listening else settings.STREAM_POLL_SECONDS

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len({s for subscriptions in self._waiting.values() for s in subscriptions})

    def subscribe(self, keys: Iterable[int]) -> Subscription:
        subscription = Subscription(keys)
        with self._lock:
            for key in subscription.keys:
                self._waiting[key].add(subscription)
            if self._client is not None and self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="stream-hints", daemon=True)
                self._listener.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            for key in subscription.keys:
                self._waiting[key].discard(subscription)
                if not self._waiting[key]:
                    del self._waiting[key]

    def publish(self, payload: str) -> None:
        if self._client is None:
            self.dispatch(payload)
            return
        try:
            self._client.publish(CHANNEL, payload)
        except RedisError:
            logger.warning("Could not send a stream hint; followers read it at their next poll.", exc_info=True)

    def dispatch(self, payload: str) -> None:
        keys = {int(part) for part in payload.split(",") if part} | {EVERY}
        with self._lock:
            woken = [s for key in keys for s in self._waiting.get(key, ())]
        for subscription in woken:
            subscription.notify()

    def _wake_all(self) -> None:
        with self._lock:
            woken = [s for subscriptions in self._waiting.values() for s in subscriptions]
        for subscription in woken:
            subscription.notify()

    def _listen(self) -> None:
        while True:
            try:
                # A connection of its own that waits as long as it takes, pinging now and then to notice a dead one.
                listener = redis.Redis.from_url(self._redis_url, socket_connect_timeout=1, health_check_interval=30)
                pubsub = listener.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self._listening = True
                self._wake_all()  # hints sent while this was not listening are lost: everyone reads again
                for message in pubsub.listen():
                    self.dispatch(message["data"].decode())
            except RedisError:
                logger.warning("Stream hints unavailable; streams poll until Redis is back.", exc_info=True)
            self._listening = False
            time.sleep(1)


_bus: Bus | None = None
_bus_lock = threading.Lock()


def bus() -> Bus:
    """This process's bus, made on first use (after a server forks its workers)."""
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = Bus(settings.REDIS_URL)
        return _bus
