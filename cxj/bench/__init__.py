"""`cxj bench`: the benchmarks (`make bench`), each printing a table and writing JSON.

`pipeline` runs end to end on the local stack, `api` the HTTP service on a private stack, `view` on ClickHouse,
`state` in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from schemas.settings import load_settings

__all__ = ["bench_app"]

bench_app = typer.Typer(help="Benchmarks on the local stack; each prints a table and writes JSON.")
console = Console()

BenchOut = Annotated[Path, typer.Option("--out", help="Folder for the JSON results")]


def _write_results(path: Path, results: dict[str, Any]) -> None:
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    console.print(f"written: {path}")


@bench_app.command("view")
def bench_view(
    ctx: typer.Context,
    touchpoints: Annotated[int, typer.Option()] = 1_000_000,
    out: BenchOut = Path("bench-results"),
) -> None:
    """Cost of touchpoints_resolved on N touchpoints vs no resolution and vs joining every identifier."""
    from rich.table import Table

    from cxj.bench.view import ViewBenchConfig, run_view_bench

    settings = load_settings(**(ctx.obj or {}))
    result = run_view_bench(settings, ViewBenchConfig(touchpoints=touchpoints))
    table = Table("query", "median s", "peak memory MB", "rows read", title=(
        f"{touchpoints:,} touchpoints, {result['table_rows'].get('identity_overrides', 0):,} overrides, "
        f"{result['table_rows'].get('identity_links', 0):,} identity links"))  # fmt: skip
    for q in result["queries"]:
        table.add_row(q["name"], f"{q['seconds']:.3f}", f"{q['memory_mb']:.1f}", f"{q['rows_read']:,}")
    console.print(table)
    _write_results(out / "view.json", result)


@bench_app.command("api")
def bench_api(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(help="Customers' rows in ClickHouse for the GET figures")] = 1_000_000,
    post_requests: Annotated[int, typer.Option(help="POSTs of 100 touchpoints")] = 3_000,
    get_requests: Annotated[int, typer.Option()] = 2_000,
    out: BenchOut = Path("bench-results"),
) -> None:
    """`cxj serve` on loopback (private stack): POST batches of 100 and GET profiles at 1M customers."""
    from cxj.bench.api import ApiBenchConfig, run_api_bench

    cfg = ApiBenchConfig(customers=customers, post_requests=post_requests, get_requests=get_requests)
    console.print("[bold]cxj serve[/]")
    result = run_api_bench(load_settings(**(ctx.obj or {})), cfg, log=console.print)
    _write_results(out / "api.json", result)


@bench_app.command("state")
def bench_state(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(help="Customer keys to hold")] = 1_000_000,
    out: BenchOut = Path("bench-results"),
) -> None:
    """Memory per customer key at N customers: the worker's ingest and stitch code in this process."""

    from cxj.bench.state import StateBenchConfig, run_state_bench

    r = run_state_bench(load_settings(**(ctx.obj or {})), StateBenchConfig(customers=customers))
    console.print(
        f"{r['keys']:,} customer keys in {r['seconds']:.0f} s: {r['serialized_bytes_per_customer']:,.0f} serialized "
        f"bytes and {r['process_bytes_per_customer']:,.0f} bytes of process memory per customer "
        f"(RSS {r['rss_mb_before']:,.0f} -> {r['rss_mb_after']:,.0f} MB)"
    )
    _write_results(out / "state.json", r)


@bench_app.command("pipeline")
def bench_pipeline(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="Touchpoints preloaded per throughput scenario")] = 500_000,
    customers: Annotated[int, typer.Option()] = 50_000,
    big_customers: Annotated[int, typer.Option(help="Customers in the state-size scenario")] = 1_000_000,
    latency_seconds: Annotated[float, typer.Option()] = 30.0,
    only: Annotated[list[str] | None, typer.Option(help="Run scenarios whose name contains this")] = None,
    peer: Annotated[bool, typer.Option(help="Also run the Quix Streams peer (its own venv, build/peer-venv)")] = True,
    out: BenchOut = Path("bench-results"),
) -> None:
    """Events/s end to end (single and batched, 1 and 2 workers), raw consume ratio, latency, memory."""
    from rich.table import Table

    from cxj.bench.pipeline import PipelineBenchConfig, run_pipeline_bench

    cfg = PipelineBenchConfig(events=events, customers=customers, big_customers=big_customers,
                              latency_seconds=latency_seconds, only=tuple(only or ()), peer=peer)  # fmt: skip
    result = run_pipeline_bench(load_settings(**(ctx.obj or {})), cfg, log=console.print)
    table = Table("scenario", "events", "end-to-end ev/s", "after start-up ev/s", "worker CPU us/tp",
                  "peer ev/s (CPU us/tp)", "x peer", "raw consume ev/s", "ratio", "p50 / p99 s", "peak RSS MB",
                  "state B/customer", "customers", "rows in CH",
                  title=f"cx-journeys pipeline benchmark ({result['machine']['cpus']} cores)")  # fmt: skip
    for r in result["results"]:
        latency = "" if r["latency_p99"] is None else f"{r['latency_p50']:.2f} / {r['latency_p99']:.2f}"
        table.add_row(
            r["scenario"]["name"], f"{r['events_sent']:,}", f"{r['end_to_end_eps']:,.0f}" if r["seconds"] else "",
            f"{r['steady_eps']:,.0f} ({r['startup_seconds']:.1f} s start-up)" if r["steady_eps"] else "",
            f"{r['cpu_us_per_touchpoint']:.1f} ({r['cpu_us_per_touchpoint_total']:.1f} with start-up)"
            if r["cpu_us_per_touchpoint"] else "",
            f"{r['peer_eps']:,.0f} ({r['peer_cpu_us_per_touchpoint']:.1f})" if r["peer_eps"] else "",
            f"{r['ratio_to_peer']:.2f}" if r["ratio_to_peer"] else "",
            f"{r['raw_consume_eps']:,.0f}" if r["raw_consume_eps"] else "",
            f"{r['ratio_to_raw']:.3f}" if r["ratio_to_raw"] else "", latency,
            ", ".join(f"{m:,.0f}" for m in r["peak_rss_mb"]), f"{r['state_bytes_per_customer']:,.0f}",
            f"{r['state_customers']:,}", f"{r['touchpoints_in_clickhouse']:,}",
        )  # fmt: skip
    Console(width=max(console.width, 180)).print(table)
    _write_results(out / "pipeline.json", result)
