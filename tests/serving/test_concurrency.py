"""Concurrent events for one session never lose an update: the final state equals the
state of applying the same events one after another (in the order they were applied)."""

import threading

import numpy as np
import pytest

from seqrec.serving.runtime import Runtime, RuntimeOptions
from seqrec.serving.stores import MemoryStore, RedisStore

N_THREADS = 8
EVENTS_PER_THREAD = 6
ITEMS = list("abcdefghij")


def fire(runtimes, session="hot"):
    """N_THREADS threads (spread over ``runtimes``) click at once on one session."""
    barrier = threading.Barrier(N_THREADS)
    errors = []

    def worker(t):
        rt = runtimes[t % len(runtimes)]
        barrier.wait()
        try:
            for e in range(EVENTS_PER_THREAD):
                rt.add_event(session, ITEMS[(t * EVENTS_PER_THREAD + e) % len(ITEMS)], 3)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def sent_items():
    return sorted(
        ITEMS[(t * EVENTS_PER_THREAD + e) % len(ITEMS)]
        for t in range(N_THREADS)
        for e in range(EVENTS_PER_THREAD)
    )


def check_equals_sequential(runtime, model_dir):
    n = N_THREADS * EVENTS_PER_THREAD
    view = runtime.session("hot")
    assert view.n_events == n  # no update lost
    assert sorted(view.history) == sent_items()  # every click, each once
    # replay the recorded order sequentially in a fresh runtime: same state
    ref = Runtime(model_dir, MemoryStore(), RuntimeOptions(max_history=n))
    for item in view.history:
        ref.add_event("hot", item, 3)
    seq = ref.session("hot")
    assert seq.history == view.history and seq.n_events == n
    if seq.hidden is None:
        assert view.hidden is None
    else:
        np.testing.assert_allclose(view.hidden, seq.hidden, rtol=1e-5, atol=1e-6)
    assert (
        runtime.session_recommendations("hot", 5).items
        == ref.session_recommendations("hot", 5).items
    )


@pytest.mark.parametrize("name", ["gru4rec", "session-pop"])
def test_concurrent_events_memory_store(model_dirs, name):
    opts = RuntimeOptions(max_history=N_THREADS * EVENTS_PER_THREAD)
    rt = Runtime(model_dirs[name], MemoryStore(), opts)
    fire([rt])
    check_equals_sequential(rt, model_dirs[name])


@pytest.mark.parametrize("name", ["gru4rec", "session-pop"])
def test_concurrent_events_redis_store_two_servers(model_dirs, redis_store, redis_url, name):
    """Two runtimes (as two server processes would) share one Redis database."""
    opts = RuntimeOptions(max_history=N_THREADS * EVENTS_PER_THREAD)
    other = RedisStore(redis_url, ttl=60)
    runtimes = [
        Runtime(model_dirs[name], redis_store, opts),
        Runtime(model_dirs[name], other, opts),
    ]
    fire(runtimes)
    check_equals_sequential(runtimes[0], model_dirs[name])
    other.close()
