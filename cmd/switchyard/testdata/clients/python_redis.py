"""redis-py (Debian python3-redis) through Switchyard: redis.Redis and
Sentinel(...).master_for / slave_for through the Sentinel facade, in
plain text and over TLS."""
import os
import sys
import time

import redis
from redis.exceptions import ConnectionError, TimeoutError
from redis.sentinel import Sentinel

host = os.environ["REDIS_HOST"]
port = int(os.environ["REDIS_PORT"])
shost, sport = os.environ["REDIS_SENTINEL_HOSTS"].split(",")[0].rsplit(":", 1)
master_name = os.environ["REDIS_SENTINEL_MASTER"]
timeout = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.1"))
prefix = os.environ["MATRIX_PREFIX"]
errors = {}


def retry(mode, fn):
    """Run fn, retrying connection errors and timeouts for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return fn()
        except (ConnectionError, TimeoutError) as e:
            errors[mode] = errors.get(mode, 0) + 1
            if time.monotonic() > deadline:
                raise
            print(f"retry {mode}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)


def flow(mode, client, reader=None):
    reader = reader or client
    k = f"{prefix}:{mode}"
    assert retry(mode, client.ping) is True
    retry(mode, lambda: client.set(f"{k}:test-key", "test-value"))
    assert retry(mode, lambda: client.get(f"{k}:test-key")) == "test-value"
    retry(mode, lambda: client.setex(f"{k}:cache:result", 3600, "data"))
    ttl = retry(mode, lambda: client.ttl(f"{k}:cache:result"))
    assert 0 < ttl <= 3600, f"TTL {ttl}"
    retry(mode, lambda: client.set(f"{k}:user:123", "user-data"))
    got = retry(mode, lambda: reader.get(f"{k}:user:123"))
    deadline = time.monotonic() + 5
    while got != "user-data" and reader is not client and time.monotonic() < deadline:
        time.sleep(0.05)  # a replica serves the read: it may lag a moment
        got = retry(mode, lambda: reader.get(f"{k}:user:123"))
    assert got == "user-data", f"read back {got!r}"
    print(f"ok {mode}", flush=True)


def after(mode, client):
    start = time.monotonic()
    key = f"{prefix}:{mode}:after"
    retry(mode, lambda: client.set(key, "after"))
    got = retry(mode, lambda: client.get(key))
    assert got == "after", f"GET {key} = {got!r}"
    ms = int((time.monotonic() - start) * 1000)
    print(f"phase2 {mode} key={key} errors={errors.get(mode, 0)} ms={ms}", flush=True)


# Standard connection, as in the guide (no socket timeout).
standard = redis.Redis(host=host, port=port, decode_responses=True)
flow("standard", standard)

# Sentinel-aware connection, as in the guide, through the facade.
sentinel = Sentinel([(shost, int(sport))], socket_timeout=timeout)
addr = sentinel.discover_master(master_name)
assert addr == (host, port), f"discover_master gave {addr}, want Switchyard {(host, port)}"
master = sentinel.master_for(master_name, socket_timeout=timeout, decode_responses=True)
replica = sentinel.slave_for(master_name, socket_timeout=timeout, decode_responses=True)
replicas = sentinel.discover_slaves(master_name)
if os.environ.get("MATRIX_READ_PORT"):
    # The facade names the read port as the group's replica; a write there
    # is refused as a replica refuses it.
    want = [(host, int(os.environ["MATRIX_READ_PORT"]))]
    assert replicas == want, f"replicas {replicas}, want the read port {want}"
    try:
        replica.set(f"{prefix}:sentinel:via-replica", "x")
        raise AssertionError("a write through slave_for was accepted")
    except redis.exceptions.ReadOnlyError:
        pass
else:
    # No read port: the facade names no replica, and redis-py's slave_for
    # falls back to the master (SentinelConnectionPool.rotate_slaves).
    assert replicas == [], f"no read port, yet replicas {replicas}"
flow("sentinel", master, reader=replica)

# Sentinel-aware over TLS: TLS to the facade's TLS listener
# (sentinel_kwargs) and to the master it names, the group's TLS port.
tls_master = None
if os.environ.get("MATRIX_TLS_SENTINEL"):
    ca = os.environ["MATRIX_TLS_CA"]
    thost, tport = os.environ["MATRIX_TLS_SENTINEL"].rsplit(":", 1)
    tls_sentinel = Sentinel([(thost, int(tport))], socket_timeout=timeout,
                            sentinel_kwargs={"ssl": True, "ssl_ca_certs": ca, "socket_timeout": timeout})
    addr = tls_sentinel.discover_master(master_name)
    want = (host, int(os.environ["MATRIX_TLS_PORT"]))
    assert addr == want, f"discover_master over TLS gave {addr}, want the TLS port {want}"
    tls_master = tls_sentinel.master_for(master_name, socket_timeout=timeout, decode_responses=True,
                                         ssl=True, ssl_ca_certs=ca)
    flow("sentinel-tls", tls_master)

print("READY", flush=True)
sys.stdin.readline()

after("sentinel", master)
if tls_master is not None:
    after("sentinel-tls", tls_master)
after("standard", standard)
print("DONE", flush=True)
