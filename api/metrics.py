"""The ``/metrics`` exposition: the views read at scrape time, in Prometheus' text format.

``/metrics`` is per process: Prometheus scrapes each one. Two kinds of family share it.
The hive's: one custom collector reads the views when Prometheus scrapes; nothing is
counted on the hot path for them and no metric object is kept between scrapes, so every
process serving the API shows the same numbers (those of the shared views). The
process's own (``api/process_metrics.py``): its HTTP routes, loop rounds, saves, view
pages and resources, which differ from process to process. Latencies are the stages view's
histograms as they are stored (their fixed buckets become ``le`` labels); the log's
length is a counter, so ``rate(apiary_events_total[1m])`` is the append rate; a view's
lag is how many log positions it has still to read (a view whose events are idle moves
its stored position up at most a second late: ``projections/runner.py``). Retries and dead
letters are counters per type and error kind (``retry_counts``, kept by the tasks view).
The hive's mode is this process's (``apiary_hive_mode{mode}``: 1 for the one in force).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from domain.modes import MODES, NORMAL
from projections.histogram import BOUNDS
from projections.incident_reads import IncidentReads
from projections.metric_reads import MetricReads
from projections.stage_reads import StageHistogram, StageReads

CONTENT_TYPE = CONTENT_TYPE_LATEST


class HiveCollector(Collector):
    def __init__(
        self,
        reads: MetricReads,
        stages: StageReads,
        head: Callable[[], int | None],
        mode: Callable[[], str] = lambda: NORMAL,
    ) -> None:
        self.reads = reads
        self.stages = stages
        self.head = head
        self.mode = mode  # the hive's mode as this process acts on it

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        head = self.head() or 0  # first: a view read after it is never "ahead" of it
        counts = self.reads.counts()
        yield _gauge("apiary_tasks", "Tasks by state and type.", ["state", "type"], counts["tasks"])
        yield _gauge(
            "apiary_queue_depth",
            "Pending tasks (delayed ones included) by type and priority.",
            ["type", "priority"],
            counts["queue"],
        )
        yield _gauge("apiary_bots", "Bots by state and pool.", ["state", "pool"], counts["bots"])
        events = CounterMetricFamily("apiary_events", "Events appended to the log.")
        events.add_metric([], head)
        yield events
        position = GaugeMetricFamily(
            "apiary_projection_position", "The log position a view has applied.", labels=["view"]
        )
        lag = GaugeMetricFamily(
            "apiary_projection_lag_events",
            "Log positions a view has still to read.",
            labels=["view"],
        )
        for view, at in counts["positions"]:
            position.add_metric([view], at)
            lag.add_metric([view], max(head - at, 0))
        yield position
        yield lag
        yield from _retries(counts["retries"])
        yield _histograms(self.stages.histograms())
        yield _modes(self.mode())


def _gauge(
    name: str, doc: str, labels: list[str], rows: list[tuple[object, ...]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for *values, n in rows:
        family.add_metric([str(v) for v in values], float(n))  # type: ignore[arg-type]
    return family


def _modes(now: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "apiary_hive_mode", "The hive's mode (1 for the one in force).", labels=["mode"]
    )
    for mode in MODES:
        family.add_metric([mode], 1.0 if mode == now else 0.0)
    return family


def _retries(rows: list[tuple[object, ...]]) -> Iterator[CounterMetricFamily]:
    labels = ["type", "error_kind"]
    retries = CounterMetricFamily(
        "apiary_task_retries", "Attempts that ended and were retried.", labels=labels
    )
    dead = CounterMetricFamily(
        "apiary_task_dead_letters", "Tasks dead-lettered (attempts exhausted).", labels=labels
    )
    for type_, kind, n_retries, n_dead in rows:
        retries.add_metric([str(type_), str(kind)], float(n_retries))  # type: ignore[arg-type]
        dead.add_metric([str(type_), str(kind)], float(n_dead))  # type: ignore[arg-type]
    yield retries
    yield dead


def _histograms(rows: list[StageHistogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "apiary_stage_seconds",
        "Time tasks spent in a stage (submit_assign, assign_start, start_done, end_to_end); "
        "attempt: first, or retry (an attempt after a task's first).",
        labels=["type", "stage", "attempt"],
    )
    for h in rows:
        cumulative, buckets = 0, []
        for bound, n in zip(BOUNDS, h.counts, strict=False):
            cumulative += n
            buckets.append((floatToGoString(bound), float(cumulative)))
        buckets.append(("+Inf", float(h.count)))
        family.add_metric([h.type, h.stage, attempt_label(h)], buckets, h.sum_s)
    return family


def attempt_label(h: StageHistogram) -> str:
    return "retry" if h.retried else "first"


class IncidentCollector(Collector):
    """The incidents view's counts: those standing now by rule, severity and state, and
    every incident ever opened by rule (a counter: the view keeps them all)."""

    def __init__(self, reads: IncidentReads) -> None:
        self.reads = reads

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rows = self.reads.counts()
        yield _gauge(
            "apiary_incidents",
            "Incidents by rule, severity and state (open, acknowledged, resolved).",
            ["rule", "severity", "state"],
            rows,  # type: ignore[arg-type]
        )
        opened = CounterMetricFamily(
            "apiary_incidents_opened", "Incidents opened, by rule.", labels=["rule"]
        )
        per_rule: dict[str, int] = {}
        for rule, _, _, n in rows:
            per_rule[rule] = per_rule.get(rule, 0) + n
        for rule, n in sorted(per_rule.items()):
            opened.add_metric([rule], float(n))
        yield opened


class Scrape:
    """A registry holding only the hive's collectors; ``render`` is one scrape."""

    content_type = CONTENT_TYPE

    def __init__(self, *collectors: Collector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
