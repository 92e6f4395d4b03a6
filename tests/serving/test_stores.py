"""Session stores: bounded in-memory LRU/TTL and Redis (compare-and-set)."""

import threading

import pytest

from seqrec.errors import ConfigError
from seqrec.serving.stores import ENTRY_OVERHEAD, MemoryStore, RedisStore, open_store


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(store, key, value):
    return store.update(key, lambda old: (value, old))


def test_memory_get_update_delete():
    s = MemoryStore()
    assert s.get("a") is None
    assert put(s, "a", b"1") is None
    assert put(s, "a", b"2") == b"1"
    assert s.get("a") == b"2"
    assert s.update("a", lambda old: (None, "kept")) == "kept"  # None: no write
    assert s.get("a") == b"2"
    assert s.delete("a") is True
    assert s.delete("a") is False
    assert s.get("a") is None


def test_memory_lru_bound_evicts_least_recently_used():
    s = MemoryStore(max_sessions=3)
    for k in "abc":
        put(s, k, k.encode())
    s.get("a")  # a becomes most recent; b is now the least recently used
    put(s, "d", b"d")
    assert s.get("b") is None
    assert [s.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    assert s.stats()["evictions"] == 1
    assert len(s) == 3


def test_memory_ttl_is_sliding():
    clock = FakeClock()
    s = MemoryStore(ttl=10, clock=clock)
    put(s, "a", b"1")
    put(s, "b", b"1")
    clock.now += 6
    assert s.get("a") == b"1"  # read refreshes a's TTL
    clock.now += 6  # b: 12 s idle, a: 6 s
    assert s.get("b") is None
    assert s.get("a") == b"1"
    clock.now += 11
    assert s.stats()["sessions"] == 0
    assert s.stats()["expirations"] == 2


def test_memory_bytes_are_measured_and_bounded():
    s = MemoryStore()
    assert s.stats()["bytes"] == 0
    put(s, "session-1", b"x" * 600)
    one = s.stats()["bytes"]
    assert 600 + ENTRY_OVERHEAD < one < 600 + ENTRY_OVERHEAD + 200
    put(s, "session-1", b"x" * 10)  # replacing frees the old value's bytes
    assert s.stats()["bytes"] == one - 590
    s.delete("session-1")
    assert s.stats()["bytes"] == 0

    bounded = MemoryStore(max_bytes=3 * one)
    for i in range(10):
        put(bounded, f"session-{i}", b"x" * 600)
    st = bounded.stats()
    assert st["sessions"] == 3 and st["bytes"] <= 3 * one and st["evictions"] == 7


def test_memory_update_is_atomic_per_session():
    s = MemoryStore()
    n_threads, n_each = 8, 200

    def incr(old):
        v = int(old or b"0") + 1
        return str(v).encode(), v

    def work():
        for _ in range(n_each):
            s.update("counter", incr)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(s.get("counter")) == n_threads * n_each


def test_bad_store_spec_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown store"):
        open_store("postgres://x")
    with pytest.raises(ConfigError, match="ttl"):
        MemoryStore(ttl=0)


# ----------------------------------------------------------------------- redis
def test_redis_get_update_delete_and_ttl(redis_store):
    s = redis_store
    assert s.get("a") is None
    assert put(s, "a", b"\x00\x01binary") is None
    assert s.get("a") == b"\x00\x01binary"
    assert 0 < s.ttl_ms("a") <= 60_000
    assert s.update("a", lambda old: (None, 5)) == 5
    assert s.delete("a") is True
    assert s.delete("a") is False
    assert s.ttl_ms("a") == -2
    stats = s.stats()
    assert stats["kind"] == "redis" and stats["keys_in_db"] == 0


def test_redis_compare_and_set_recomputes_on_conflict(redis_store, redis_url):
    """A concurrent writer between read and commit forces a recompute from its value."""
    other = RedisStore(redis_url, ttl=60)
    put(redis_store, "k", b"1")
    calls = []

    def fn(old):
        calls.append(old)
        if len(calls) == 1:  # another process writes while we compute
            put(other, "k", b"10")
        return str(int(old) + 1).encode(), None

    redis_store.update("k", fn)
    assert calls == [b"1", b"10"]
    assert redis_store.get("k") == b"11"
    assert redis_store.conflicts == 1
    other.close()


def test_redis_create_conflict(redis_store, redis_url):
    other = RedisStore(redis_url, ttl=60)
    calls = []

    def fn(old):
        calls.append(old)
        if len(calls) == 1:
            put(other, "new", b"A")
        return (old or b"") + b"B", None

    redis_store.update("new", fn)
    assert calls == [None, b"A"]
    assert redis_store.get("new") == b"AB"
    other.close()


def test_redis_update_is_atomic_across_clients(redis_store, redis_url):
    stores = [RedisStore(redis_url, ttl=60) for _ in range(4)]  # like 4 server processes

    def incr(old):
        v = int(old or b"0") + 1
        return str(v).encode(), v

    def work(st):
        for _ in range(50):
            st.update("counter", incr)

    threads = [threading.Thread(target=work, args=(st,)) for st in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(redis_store.get("counter")) == 8 * 50
    for st in stores:
        st.close()


def test_redis_unreachable_is_a_store_error():
    from seqrec.serving.stores import StoreError

    s = RedisStore("redis://127.0.0.1:1/0", socket_timeout=0.5)
    assert s.ping() is False
    with pytest.raises(StoreError, match="redis store"):
        s.get("a")
