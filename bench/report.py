"""The bench's table: every figure measured, then each goal with its verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.goals import judged

__all__ = ["render"]

Results = Mapping[str, Any]


def render(results: Results) -> str:
    lines = [_header(results.get("machine", {}))]
    for section in (_end_to_end, _ceiling, _planning, _etl, _latency, _functions):
        lines += section(results)
    lines += ["", "  goal (reported, not asserted)              target                        measured   verdict"]
    for name, verdict in judged(results).items():
        value = _shown(verdict["value"], verdict["unit"])
        met = {True: "met", False: "MISSED", None: "not measured"}[verdict["met"]]
        lines.append(f"  {name:<42} {verdict['target']:<27} {value:>11}   {met}")
    return "\n".join(lines)


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if unit == "%" else f"{value:,.2f}{unit}"


def _header(machine: Results) -> str:
    load = machine.get("load_average", {})
    return (f"Patient Notify bench · {machine.get('cpus', '?')} cores · load average {load.get('start', '?')} before "
            f"it started, {load.get('end', '?')} at the end: whatever exceeds the bench's own ~2 was other work "
            "on the same cores, and the figures are that much pessimistic")  # fmt: skip


def _end_to_end(results: Results) -> list[str]:
    e2e = results.get("end_to_end")
    if not e2e:
        return []
    once, broker, cpu = e2e["exactly_once"], e2e["broker"], e2e["cpu_ms_per_notification"]
    return [
        f"  end to end       {e2e['notifications_per_s']:>9,.1f} notifications/s · {e2e['notifications']:,} "
        f"notifications for {e2e['appointments']:,} appointments in {e2e['seconds']} s, tick to last acceptance",
        f"                   accepted {once['accepted']:,} of {once['expected']:,}: {once['missing']} missing, "
        f"{once['duplicates']} duplicates, {once['unexpected']} unexpected · receipts settled "
        f"{e2e['receipts_settled_s']} s later · scheduler ticks {e2e['scheduler_ticks']}",
        f"                   broker: {broker['ingested']:,} events ingested "
        f"({e2e['broker_events_per_notification']} per notification), retried "
        f"{sum(broker['retried'].values())}, dead-lettered {broker['dead_lettered']}, "
        f"dropped {broker['dropped']}, errors {len(broker['errors'])}",
        f"                   CPU ms per notification: {sum(cpu.values()):.1f} = "
        + ", ".join(f"{name} {ms}" for name, ms in cpu.items()),
    ]  # fmt: skip


def _ceiling(results: Results) -> list[str]:
    ceiling = results.get("ceiling")
    if not ceiling:
        return []
    sizes = f"{ceiling['messages']:,} messages of {ceiling['message_bytes']} bytes"
    return [
        f"  raw pika         {ceiling['pika_per_s']:>9,.1f} messages/s · confirms + acks, quorum queue, "
        f"{sizes} · ours = {_share(ceiling.get('share_of_pika'))}",
        f"  raw HTTP         {ceiling['http_per_s']:>9,.1f} requests/s · no-op func-python function, "
        f"{ceiling['http_concurrency']} concurrent · ours = {_share(ceiling.get('share_of_http'))}",
    ]  # fmt: skip


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _planning(results: Results) -> list[str]:
    planning = results.get("planning")
    if not planning:
        return []
    return [f"  planning         {planning['planning_s']:>9} s for {planning['appointments']:,} due (claim, plan, "
            f"outbox) · the tick with publishing to an instant ingress: "
            f"{planning['tick_with_publishing_s']} s, {planning.get('tick_published', 0):,} published "
            f"(the rest left to the next drain: the tick publishes within a budget)"]  # fmt: skip


def _etl(results: Results) -> list[str]:
    etl = results.get("etl")
    if not etl:
        return []
    return [f"  ETL              {etl['appointments_per_s']:>9,.1f} appointments/s · {etl['upserted']:,} of "
            f"{etl['appointments']:,} in {etl['seconds']} s at {etl['api_failure_rate']:.0%} API failures: "
            f"{etl['pages']} pages, {etl['requests']} requests, {etl['retries']} retries, {etl['resumes']} resumes, "
            f"status {etl['status']}"]  # fmt: skip


def _latency(results: Results) -> list[str]:
    latency = results.get("change_notice_latency")
    if not latency:
        return []
    return [f"  change notices   p50 {latency['p50_ms']} ms · p99 {latency['p99_ms']} ms · max {latency['max_ms']} ms "
            f"over {latency['events']:,} events, ingress to SMS stand-in, warm"]  # fmt: skip


def _functions(results: Results) -> list[str]:
    e2e = results.get("end_to_end")
    if not e2e:
        return []
    lines = ["", "  function         cold start   at ready RSS / PSS   after the run RSS / PSS"]
    for name, start in e2e["cold_start"].items():
        after = e2e["memory_after_run"].get(name, {})
        lines.append(f"  {name:<15} {start['ready_s']:>9} s   {start['rss_mb']:>6} / {start['pss_mb']:>5} MB"
                     f"   {after.get('rss_mb', '-'):>9} / {after.get('pss_mb', '-'):>5} MB")  # fmt: skip
    return lines
