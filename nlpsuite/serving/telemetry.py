"""The server's Prometheus metrics, in a registry of its own (two servers in one process, as in
the tests, never share counts): requests by route template and status, queue depth, and the
batcher's batch sizes, batch tokens, queue waits and compute times."""

from __future__ import annotations

from collections.abc import Sequence

# Batch sizes in records and tokens: powers of two up to the largest sensible limits.
SIZE_BUCKETS = tuple(float(2**power) for power in range(0, 11))
TOKEN_BUCKETS = tuple(float(2**power) for power in range(3, 18))
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)


class Telemetry:
    """One server's metrics; a :class:`~nlpsuite.serving.batcher.BatchObserver`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        task = ("task",)
        self.requests = Counter("nlpsuite_requests", "HTTP requests answered, by route "
                                "template and status.", ("route", "status"), registry=registry)
        self.depth = Gauge("nlpsuite_queue_depth", "Records waiting for a batch.", task,
                           registry=registry)
        self.sizes = Histogram("nlpsuite_batch_size", "Records per forward pass.", task,
                               registry=registry, buckets=SIZE_BUCKETS)
        self.tokens = Histogram("nlpsuite_batch_tokens", "Tokens per forward pass.", task,
                                registry=registry, buckets=TOKEN_BUCKETS)
        self.waits = Histogram("nlpsuite_queue_wait_seconds", "Time a record waited in the "
                               "queue before its forward pass.", task, registry=registry,
                               buckets=SECONDS_BUCKETS)
        self.compute = Histogram("nlpsuite_compute_seconds", "Time of one forward pass.", task,
                                 registry=registry, buckets=SECONDS_BUCKETS)
        self.drops = Counter("nlpsuite_dropped_records", "Records dropped before their "
                             "forward pass: the client disconnected or the request timed out.",
                             ("task", "reason"), registry=registry)

    def request(self, route: str, status: int) -> None:
        self.requests.labels(route=route, status=str(status)).inc()

    def queue_depth(self, task: str, depth: int) -> None:
        self.depth.labels(task=task).set(depth)

    def batch(self, task: str, size: int, tokens: int, waits: Sequence[float],
              compute_s: float) -> None:
        self.sizes.labels(task=task).observe(size)
        self.tokens.labels(task=task).observe(tokens)
        for wait in waits:
            self.waits.labels(task=task).observe(wait)
        self.compute.labels(task=task).observe(compute_s)

    def dropped(self, task: str, reason: str, count: int) -> None:
        self.drops.labels(task=task, reason=reason).inc(count)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
