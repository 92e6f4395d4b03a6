"""Session-state stores: bounded in-memory (LRU + TTL) and Redis.

A store maps a session id to the bytes of its state (:mod:`seqrec.serving.state`).
The one operation that changes sessions is :meth:`SessionStore.update_many`, a
read-modify-write of several sessions at once (one batched model call computes all
their new states) that never loses an update when two events for the same session
arrive at once:

* :class:`MemoryStore` holds per-session locks (one of 1,024 lock stripes chosen by
  the session id's hash, taken in a fixed order) across the reads, the model call and
  the writes;
* :class:`RedisStore` takes the same in-process locks (so threads of one server do not
  collide), reads all keys in one round trip and commits with a compare-and-set Lua
  script per key (pipelined): new bytes are written only if the key still holds the
  bytes that were read (or is still absent); the sessions that changed in between are
  recomputed from their fresh values. This is safe across processes and machines
  sharing one Redis.

Both stores expire a session ``ttl`` seconds after its last read or write.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from seqrec.errors import ConfigError, SeqrecError

T = TypeVar("T")
Updater = Callable[[bytes | None], tuple[bytes | None, T]]
# fn(positions, old values) -> new values (None: leave that key as it is); positions
# index the keys given to update_many (a retry passes only the conflicting ones)
BatchUpdater = Callable[[list[int], list[bytes | None]], list[bytes | None]]

DEFAULT_TTL = 1800.0  # seconds of inactivity after which a session is forgotten
DEFAULT_MAX_SESSIONS = 1_000_000
# Python bookkeeping per in-memory entry beyond its key and value objects (ordered-dict
# node and slot, the (value, expiry) tuple and the float); measured with tracemalloc.
ENTRY_OVERHEAD = 150


class StoreError(SeqrecError):
    """The session store is unavailable or could not commit an update."""


class SessionStore(Protocol):
    """What the runtime needs from a store."""

    kind: str

    def get(self, session_id: str) -> bytes | None:
        """The session's bytes (refreshing its TTL), or None if absent or expired."""
        ...

    def update(self, session_id: str, fn: Updater[T]) -> T:
        """Atomically replace the session's bytes by ``fn(old)[0]`` (None: leave as is)
        and return ``fn(old)[1]``. ``fn`` may run more than once; it must be pure."""
        ...

    def update_many(self, session_ids: list[str], fn: BatchUpdater) -> None:
        """Atomically (per session) replace each session's bytes by what ``fn`` returns
        for it. Session ids must be distinct. ``fn`` may be called again for the
        sessions whose value changed meanwhile (Redis); it must be pure."""
        ...

    def delete(self, session_id: str) -> bool:
        """Forget the session; True if it existed."""
        ...

    def stats(self) -> dict[str, Any]:
        """Sizes and counters for /v1/model and /metrics."""
        ...

    def ping(self) -> bool:
        """True when the store answers."""
        ...

    def close(self) -> None: ...


class LockStripes:
    """A fixed set of locks; a session id always maps to the same one."""

    def __init__(self, n: int = 1024) -> None:
        self._locks = [threading.Lock() for _ in range(n)]

    def __call__(self, key: str) -> threading.Lock:
        return self._locks[hash(key) % len(self._locks)]

    @contextlib.contextmanager
    def many(self, keys: list[str]) -> Iterator[None]:
        """Hold the locks of all ``keys`` (each stripe once, in index order: no deadlock)."""
        n = len(self._locks)
        stripes = sorted({hash(k) % n for k in keys})
        with contextlib.ExitStack() as stack:
            for i in stripes:
                stack.enter_context(self._locks[i])
            yield


def _single(fn: Updater[T]) -> tuple[BatchUpdater, list[T]]:
    """Adapt a one-session updater to update_many; the list receives its result."""
    out: list[T] = []

    def batch(positions: list[int], olds: list[bytes | None]) -> list[bytes | None]:
        new, result = fn(olds[0])
        out[:] = [result]
        return [new]

    return batch, out


class MemoryStore:
    """Bounded in-process store: LRU over at most ``max_sessions`` sessions (and at most
    ``max_bytes`` measured bytes, if given) with a sliding ``ttl``.

    ``bytes`` in :meth:`stats` counts each entry's key and value objects plus
    :data:`ENTRY_OVERHEAD`, i.e. what the store itself keeps alive.
    """

    kind = "memory"

    def __init__(
        self,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        ttl: float = DEFAULT_TTL,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ConfigError("max_sessions must be >= 1")
        if ttl <= 0:
            raise ConfigError("session ttl must be > 0 seconds")
        if max_bytes is not None and max_bytes < 1:
            raise ConfigError("max_bytes must be >= 1")
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.ttl = float(ttl)
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # LRU first
        self._mu = threading.Lock()  # guards _data and the counters (held briefly)
        self._locks = LockStripes()  # per-session locks for read-modify-write
        self._bytes = 0
        self.evictions = 0
        self.expirations = 0

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return sys.getsizeof(key) + sys.getsizeof(value) + ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= self._size(key, value)

    def _sweep(self, now: float) -> None:
        """Drop expired sessions from the LRU end (the sliding TTL keeps them in order)."""
        while self._data:
            key, (_, expires) = next(iter(self._data.items()))
            if expires > now:
                break
            self._drop(key)
            self.expirations += 1

    def get(self, session_id: str) -> bytes | None:
        now = self._clock()
        with self._mu:
            entry = self._data.get(session_id)
            if entry is None:
                return None
            value, expires = entry
            if expires <= now:
                self._drop(session_id)
                self.expirations += 1
                return None
            self._data[session_id] = (value, now + self.ttl)
            self._data.move_to_end(session_id)
            return value

    def _put(self, session_id: str, value: bytes) -> None:
        now = self._clock()
        with self._mu:
            if session_id in self._data:
                self._drop(session_id)
            self._data[session_id] = (value, now + self.ttl)
            self._bytes += self._size(session_id, value)
            self._sweep(now)
            while len(self._data) > self.max_sessions or (
                self.max_bytes is not None and self._bytes > self.max_bytes and self._data
            ):
                key = next(iter(self._data))
                self._drop(key)
                self.evictions += 1

    def update(self, session_id: str, fn: Updater[T]) -> T:
        batch, out = _single(fn)
        self.update_many([session_id], batch)
        return out[0]

    def update_many(self, session_ids: list[str], fn: BatchUpdater) -> None:
        with self._locks.many(session_ids):
            olds = [self.get(sid) for sid in session_ids]
            news = fn(list(range(len(session_ids))), olds)
            for sid, new in zip(session_ids, news, strict=True):
                if new is not None:
                    self._put(sid, new)

    def delete(self, session_id: str) -> bool:
        with self._locks(session_id), self._mu:
            if session_id in self._data:
                self._drop(session_id)
                return True
            return False

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, Any]:
        with self._mu:
            self._sweep(self._clock())
            return {
                "kind": self.kind,
                "sessions": len(self._data),
                "bytes": self._bytes,
                "max_sessions": self.max_sessions,
                "max_bytes": self.max_bytes,
                "ttl_s": self.ttl,
                "evictions": self.evictions,
                "expirations": self.expirations,
            }

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._mu:
            self._data.clear()
            self._bytes = 0


# KEYS[1]: session key. ARGV: [1] "1" if the key was absent when read, else "0";
# [2] the bytes read; [3] the new bytes; [4] TTL in ms. Returns 1 if written, 0 if the
# key changed in between (the caller recomputes from the fresh value).
_CAS_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur then return 0 end
elseif (not cur) or cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
"""


class RedisStore:
    """Session state in Redis: one string key per session (``prefix + session id``)
    holding the state bytes, with a sliding TTL; updates commit by compare-and-set."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        ttl: float = DEFAULT_TTL,
        prefix: str = "seqrec:session:",
        max_retries: int = 100,
        socket_timeout: float = 2.0,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "the redis store needs the 'redis' package: pip install 'seqrec[serve]'"
            ) from None
        if ttl <= 0:
            raise ConfigError("session ttl must be > 0 seconds")
        self.url = url
        self.ttl = float(ttl)
        self.prefix = prefix
        self.max_retries = max_retries
        self._ttl_ms = max(1, round(self.ttl * 1000))
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._r = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError as exc:
            raise ConfigError(f"bad redis URL {url!r}: {exc}") from None
        self._cas = self._r.register_script(_CAS_SCRIPT)
        self._locks = LockStripes()
        self.conflicts = 0  # compare-and-set retries (concurrent writers)

    def _key(self, session_id: str) -> str:
        return self.prefix + session_id

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"redis store {self.url}: {exc}") from None

    def get(self, session_id: str) -> bytes | None:
        return self._call(self._r.getex, self._key(session_id), px=self._ttl_ms)

    def update(self, session_id: str, fn: Updater[T]) -> T:
        batch, out = _single(fn)
        self.update_many([session_id], batch)
        return out[0]

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        if len(keys) == 1:
            return [self._call(self._r.getex, keys[0], px=self._ttl_ms)]
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.getex(key, px=self._ttl_ms)
        return list(self._call(pipe.execute))

    def _cas_many(self, writes: list[tuple[str, bytes | None, bytes]]) -> list[bool]:
        def args(old: bytes | None, new: bytes) -> list[Any]:
            return ["1" if old is None else "0", old or b"", new, self._ttl_ms]

        if len(writes) == 1:
            key, old, new = writes[0]
            return [bool(self._call(self._cas, keys=[key], args=args(old, new)))]
        pipe = self._r.pipeline(transaction=False)
        for key, old, new in writes:
            self._cas(keys=[key], args=args(old, new), client=pipe)
        return [bool(x) for x in self._call(pipe.execute)]

    def update_many(self, session_ids: list[str], fn: BatchUpdater) -> None:
        keys = [self._key(s) for s in session_ids]
        with self._locks.many(session_ids):
            pending = list(range(len(keys)))
            for _ in range(self.max_retries):
                olds = self._get_many([keys[i] for i in pending])
                news = fn(pending, olds)
                writes = [
                    (i, old, new)
                    for i, old, new in zip(pending, olds, news, strict=True)
                    if new is not None
                ]
                if not writes:
                    return
                done = self._cas_many([(keys[i], old, new) for i, old, new in writes])
                pending = [i for (i, _, _), ok in zip(writes, done) if not ok]
                if not pending:
                    return
                self.conflicts += len(pending)
        shown = ", ".join(repr(session_ids[i]) for i in pending[:3])
        raise StoreError(
            f"session(s) {shown}: gave up after {self.max_retries} conflicting updates"
        )

    def delete(self, session_id: str) -> bool:
        with self._locks(session_id):
            return bool(self._call(self._r.delete, self._key(session_id)))

    def ttl_ms(self, session_id: str) -> int:
        """Remaining TTL of a session in ms (-2 absent, -1 no TTL); for tests and ops."""
        return int(self._call(self._r.pttl, self._key(session_id)))

    def stats(self) -> dict[str, Any]:
        info = self._call(self._r.info, "memory")
        return {
            "kind": self.kind,
            "url": _redact(self.url),
            "keys_in_db": int(self._call(self._r.dbsize)),
            "redis_used_memory": int(info.get("used_memory", 0)),
            "ttl_s": self.ttl,
            "conflicts": self.conflicts,
        }

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self._r.close()


def _redact(url: str) -> str:
    """Hide a password in a redis URL (redis://user:secret@host -> redis://user:***@host)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    cred, _, host = rest.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def open_store(
    spec: str = "memory",
    *,
    ttl: float = DEFAULT_TTL,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    max_bytes: int | None = None,
) -> SessionStore:
    """``memory`` or a Redis URL (``redis://host:port/db``, ``rediss://``, ``unix://``)."""
    if spec == "memory":
        return MemoryStore(max_sessions=max_sessions, ttl=ttl, max_bytes=max_bytes)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec, ttl=ttl)
    raise ConfigError(f"unknown store {spec!r}: use 'memory' or a redis://host:port/db URL")
