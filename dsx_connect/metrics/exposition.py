"""One scrape: what the processes measured (every process of this host in multiprocess mode) plus
what Redis holds now."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dsx_connect.metrics import instruments


def process_registry() -> CollectorRegistry:
    """The measured series: in multiprocess mode, merged from the folder's files (this process, the
    workers sharing the folder, and processes gone since); else this process's own."""
    folder = instruments.multiproc_dir()
    if folder is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry


class _Scrape:
    """What ``generate_latest`` needs (``collect``): the registry's families, then the others'."""

    def __init__(self, registry: CollectorRegistry, extra: Iterable[Collector]) -> None:
        self.registry = registry
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        for collector in self.extra:
            yield from collector.collect()


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The Prometheus text format of the measured series and the ``extra`` collectors (read now)."""
    return generate_latest(_Scrape(process_registry(), extra))
