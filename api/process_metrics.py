"""``/metrics``' families of THIS process: its HTTP routes, loop rounds, saves, view pages
and resources.

Unlike the views' families (``api/metrics.py``, the same from every API process), these
are each process's own: Prometheus scrapes every process and adds them up (``sum by``).
The histograms are the process's totals since it started (``ProcessTimings.totals``: the
last hour's minutes and what left the ring before), with the fixed buckets of
``projections/histogram.py`` as ``le``; the resources are those of the last beat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from projections.histogram import BOUNDS
from projections.timings import ProcessTimings, Timing
from store.processes import Resources

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily


class ProcessCollector(Collector):
    def __init__(self, timings: ProcessTimings, resources: Callable[[], Resources | None]) -> None:
        self.timings = timings
        self.resources = resources

    def collect(self) -> Iterator[Family]:
        totals = self.timings.totals()
        http = HistogramMetricFamily(
            "apiary_http_request_seconds",
            "This process's HTTP requests by method, route template and status class.",
            labels=["method", "route", "status"],
        )
        loops = HistogramMetricFamily(
            "apiary_loop_round_seconds",
            "Rounds of a control loop this process led (wall time).",
            labels=["loop"],
        )
        loop_cpu = CounterMetricFamily(
            "apiary_loop_cpu_seconds", "CPU time of those rounds.", labels=["loop"]
        )
        loop_items = CounterMetricFamily(
            "apiary_loop_items", "Items of work those rounds did.", labels=["loop"]
        )
        saves = HistogramMetricFamily(
            "apiary_save_seconds", "This process's appends to the log (one per save)."
        )
        saved = CounterMetricFamily("apiary_save_events", "Events those appends wrote.")
        pages = HistogramMetricFamily(
            "apiary_view_apply_seconds",
            "A view's apply of one page of events, in this process's runners.",
            labels=["view"],
        )
        applied = CounterMetricFamily(
            "apiary_view_events_applied", "Events those pages applied.", labels=["view"]
        )
        for name, t in sorted(totals.items()):
            kind, _, rest = name.partition(":")
            if kind == "http":
                method_route, _, status = rest.rpartition(":")
                method, _, route = method_route.partition(" ")
                _observe(http, [method, route, status], t)
            elif kind == "loop":
                _observe(loops, [rest], t)
                loop_cpu.add_metric([rest], t.cpu_s)
                loop_items.add_metric([rest], float(t.items))
            elif kind == "save":
                _observe(saves, [], t)
                saved.add_metric([], float(t.items))
            elif kind == "view":
                _observe(pages, [rest], t)
                applied.add_metric([rest], float(t.items))
        yield from (http, loops, loop_cpu, loop_items, saves, saved, pages, applied)
        resources = self.resources()
        if resources is not None:
            yield from _resources(resources)


def _observe(family: HistogramMetricFamily, labels: list[str], t: Timing) -> None:
    cumulative, buckets = 0, []
    for bound, n in zip(BOUNDS, t.counts, strict=False):
        cumulative += n
        buckets.append((floatToGoString(bound), float(cumulative)))
    buckets.append(("+Inf", float(t.count)))
    family.add_metric(labels, buckets, t.sum_s)


def _resources(r: Resources) -> Iterator[Family]:
    cpu = CounterMetricFamily("apiary_process_cpu_seconds", "CPU time this process used.")
    cpu.add_metric([], r.cpu_s)
    yield cpu
    for name, doc, value in (
        ("apiary_process_cpu_share", "Share of one core since the last beat.", r.cpu_share),
        ("apiary_process_resident_memory_bytes", "Resident memory.", r.rss_bytes),
        ("apiary_process_threads", "Python threads.", r.threads),
    ):
        yield GaugeMetricFamily(name, doc, value=float(value))
    labels = ["pool"]
    size = GaugeMetricFamily("apiary_pool_connections", "Connections open.", labels=labels)
    idle = GaugeMetricFamily("apiary_pool_idle_connections", "Of those, idle.", labels=labels)
    waiting = GaugeMetricFamily(
        "apiary_pool_waiting", "Clients waiting for a connection now.", labels=labels
    )
    waited = CounterMetricFamily(
        "apiary_pool_wait_seconds", "Time clients waited for a connection.", labels=labels
    )
    for p in r.pools:
        size.add_metric([p.name], float(p.size))
        idle.add_metric([p.name], float(p.available))
        waiting.add_metric([p.name], float(p.waiting))
        waited.add_metric([p.name], p.wait_ms / 1000)
    yield from (size, idle, waiting, waited)
