"""`cxj`: the command line of cx-journeys (Contract 4)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cxj.bench import bench_app
from schemas.errors import CxjError
from schemas.settings import Settings, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="cx-journeys: customer touchpoints -> Kafka -> Faust -> ClickHouse, with churn-risk alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local stack on loopback: broker, ClickHouse, Prometheus, Alertmanager.")
schema_app = typer.Typer(help="JSON Schema files of the public contract.")
dlq_app = typer.Typer(help="Dead letters: re-feed them after a fix.")
app.add_typer(stack_app, name="stack")
app.add_typer(schema_app, name="schema")
app.add_typer(bench_app, name="bench")
app.add_typer(dlq_app, name="dlq")
console = Console()
err = Console(stderr=True)

Home = Annotated[Path | None, typer.Option("--home", help="State folder (CXJ_HOME, default .cxj)")]


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    base = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(**base)


def _kafka_settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings of a command that talks to Kafka, once one connection with them has worked.

    A wrong password or certificate authority is an error naming the setting within a second, instead of a
    client retrying until its timeout (streams/runtime/kafka_access.py).
    """
    from streams.runtime.kafka_access import check_kafka_access

    settings = _settings(ctx, **overrides)
    check_kafka_access(settings)
    return settings


@app.callback()
def _global(
    ctx: typer.Context,
    home: Home = None,
    kafka_bootstrap: Annotated[str | None, typer.Option(help="CXJ_KAFKA_BOOTSTRAP")] = None,
    clickhouse_url: Annotated[str | None, typer.Option(help="CXJ_CLICKHOUSE_URL")] = None,
) -> None:
    ctx.obj = {"home": home, "kafka_bootstrap": kafka_bootstrap, "clickhouse_url": clickhouse_url}


# --- stack -------------------------------------------------------------------------------------

Port = Annotated[int | None, typer.Option()]


@stack_app.command("up")
def stack_up(
    ctx: typer.Context,
    kafka_port: Port = None,
    clickhouse_port: Port = None,
    clickhouse_http_port: Port = None,
    prometheus_port: Port = None,
    alertmanager_port: Port = None,
    worker_web_port: Port = None,
) -> None:
    """Start what is not running and wait until every part answers; writes .cxj/stack.env."""
    from deploy.local.stack import LocalStack

    settings = _settings(
        ctx, kafka_port=kafka_port, clickhouse_port=clickhouse_port, clickhouse_http_port=clickhouse_http_port,
        prometheus_port=prometheus_port, alertmanager_port=alertmanager_port, worker_web_port=worker_web_port,
    )  # fmt: skip
    env = LocalStack(settings).up()
    for name in ("CXJ_KAFKA_BOOTSTRAP", "CXJ_PROMETHEUS_URL", "CXJ_ALERTMANAGER_URL"):
        console.print(f"{name}={env.get(name, '')}")
    console.print(f"credentials and endpoints: {settings.home / 'stack.env'}")


@stack_app.command("down")
def stack_down(ctx: typer.Context) -> None:
    """Stop only what `up` started."""
    from deploy.local.stack import LocalStack

    stopped = LocalStack(_settings(ctx)).down()
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@stack_app.command("status")
def stack_status(ctx: typer.Context) -> None:
    """Each component: running, stopped, or a foreign process on its port."""
    from rich.table import Table

    from deploy.local.stack import LocalStack

    table = Table("component", "state", "pid", "endpoint", "detail")
    for s in LocalStack(_settings(ctx)).status():
        table.add_row(s.name, s.state, str(s.pid or ""), s.endpoint, s.detail)
    console.print(table)


# --- init, worker ------------------------------------------------------------------------------


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the topics (explicit partitions and configs) and migrate the ClickHouse schema (as the administrator)."""
    from sinks.clickhouse import ClickHouse
    from sinks.migrate import migrate
    from streams.runtime.topics import create_topics

    settings = _kafka_settings(ctx)
    created = create_topics(settings)
    console.print(f"topics created: {', '.join(created) or 'none (all present)'}")
    ran = migrate(ClickHouse(settings.clickhouse_schema_admin))  # the writer may not change the schema
    console.print(f"migrations applied: {', '.join(f'{m.version:04d}_{m.name}' for m in ran) or 'none (up to date)'}")


@app.command()
def worker(
    ctx: typer.Context,
    web_port: Annotated[int | None, typer.Option(help="CXJ_WORKER_WEB_PORT")] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info, debug")] = "warn",
) -> None:
    """Run the Faust worker (ingest, stitch, identity arbiter; metrics at /metrics)."""
    from streams.runtime.worker import run_worker

    run_worker(_kafka_settings(ctx, worker_web_port=web_port), loglevel=loglevel)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="CXJ_API_HOST (default 127.0.0.1: loopback only)")] = None,
    port: Annotated[int | None, typer.Option(help="CXJ_API_PORT (default 8080)")] = None,
) -> None:
    """The HTTP service: POST /v1/touchpoints for feeders, GET /v1/customers/{id} for agents (stateless)."""
    from api.service import run

    run(_settings(ctx), host=host, port=port)


@app.command()
def customer(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="A customer key, or phone:…, email:…, anon:…, device:…, wechat:…")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the profile as JSON")] = False,
) -> None:
    """A customer's profile from ClickHouse (the BI user): risk, strikes and why, journeys, a timeline."""
    from cxj.customer import render
    from sinks.clickhouse import ClickHouse
    from sinks.customers import profile

    settings = _settings(ctx)
    found = profile(ClickHouse(settings.clickhouse_bi), settings, customer_id)
    if found is None:
        err.print("no customer with this id")
        raise typer.Exit(1)
    if json_out:
        sys.stdout.write(found.model_dump_json(indent=2) + "\n")
    else:
        render(found, console)


# --- traffic -----------------------------------------------------------------------------------


@app.command()
def simulate(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="Touchpoints to send")] = 20_000,
    customers: Annotated[int, typer.Option()] = 2_000,
    seed: Annotated[int, typer.Option()] = 7,
    days: Annotated[float, typer.Option(help="Spread event times over the last N days")] = 30.0,
    rate: Annotated[float | None, typer.Option(help="Events per second (default: as fast as possible)")] = None,
    batch_size: Annotated[int, typer.Option(help="Touchpoints per Kafka message (1 = single events)")] = 1,
    unhappy_share: Annotated[float, typer.Option()] = 0.15,
    invalid_share: Annotated[float, typer.Option(help="Share of deliberately broken payloads")] = 0.01,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    http: Annotated[
        bool, typer.Option("--http", help="Send through `cxj serve` (CXJ_API_URL) instead of Kafka")
    ] = False,
) -> None:
    """Send seedable multi-channel traffic (the stories of docs/contract.md) to cx.touchpoints."""
    from cxj.simulate import SimulationConfig, generate_raw, messages, produce

    settings = _settings(ctx) if http else _kafka_settings(ctx)
    config = SimulationConfig(
        seed=seed, customers=customers, events=events, days=days, now=datetime.now(UTC),
        unhappy_share=unhappy_share, invalid_share=invalid_share, region=settings.default_region,
    )  # fmt: skip
    if http:
        from cxj.simulate.http import post

        posted = post(settings, messages(generate_raw(config), batch_size))
        refused = ", ".join(f"{n:,} answered {code}" for code, n in sorted(posted.refused.items()))
        console.print(f"posted {posted.sent_events:,} touchpoints in {posted.sent_messages:,} requests to "
                      f"{settings.api_url}: {posted.accepted:,} accepted, {posted.rejected:,} rejected"
                      + (f"; refused whole: {refused}" if refused else ""))  # fmt: skip
        return
    stats = produce(settings, generate_raw(config), rate=rate, batch_size=batch_size, total=events, progress=progress)
    console.print(
        f"sent {stats.sent_events:,} touchpoints in {stats.sent_messages:,} messages, "
        f"{stats.events_per_second:,.0f} events/s"
    )


@app.command()
def demo(
    ctx: typer.Context,
    events: Annotated[int, typer.Option()] = 50_000,
    customers: Annotated[int, typer.Option()] = 5_000,
    batch_size: Annotated[int, typer.Option()] = 100,
    seed: Annotated[int, typer.Option()] = 7,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pipeline to drain")] = 600.0,
) -> None:
    """Stack up, init, worker, simulated traffic, wait until drained, report."""
    from cxj.demo import run_demo

    run_demo(_settings(ctx), console, events=events, customers=customers, batch_size=batch_size, seed=seed,
             timeout=timeout)  # fmt: skip


@app.command()
def check(
    ctx: typer.Context,
    dlq: Annotated[bool, typer.Option(help="Also compare the DLQ topic with cx.dead_letters")] = True,
) -> None:
    """The pipeline's invariants over ClickHouse (read-only, the BI user): exit 1 when any fails."""
    from cxj.check import render, run_all
    from sinks.clickhouse import ClickHouse

    settings = _kafka_settings(ctx) if dlq else _settings(ctx)
    results = run_all(ClickHouse(settings.clickhouse_bi), settings, dlq=dlq)
    render(results, console)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def report(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Rows per section")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here")] = None,
) -> None:
    """The CX report from ClickHouse: risk, dissatisfaction by channel and signal, latest alerts."""
    import orjson

    from cxj.report import collect, render
    from sinks.clickhouse import ClickHouse

    settings = _settings(ctx)
    if html is not None:
        from cxj.report_html import collect_html, render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(collect_html(ClickHouse(settings.clickhouse_bi))))
        console.print(f"HTML report: {html}")
    data = collect(ClickHouse(settings.clickhouse_bi), limit=limit)
    if json_out:
        sys.stdout.write(orjson.dumps(data.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(data, console)


@schema_app.command("export")
def schema_export(
    out: Annotated[Path | None, typer.Option(help="Folder (default: schemas/jsonschema)")] = None,
) -> None:
    """Write the JSON Schema files (touchpoint v1, batch envelope, alerts, links, rules)."""
    from schemas.export import DEFAULT_DIR, export

    for path in export(out or DEFAULT_DIR):
        console.print(str(path))


@schema_app.command("cluster")
def schema_cluster(
    out: Annotated[Path, typer.Option(help="Where to write the DDL")] = Path(
        "deploy/k8s/clickhouse/schema-cluster.sql"
    ),
    cluster: Annotated[str, typer.Option(help="ClickHouse cluster name (remote_servers)")] = "cx",
    database: Annotated[str, typer.Option()] = "cx",
) -> None:
    """Write the cluster variant of the schema (Replicated tables behind Distributed ones)."""
    from sinks.cluster import cluster_schema

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cluster_schema(database, cluster))
    console.print(str(out))


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    reason: Annotated[list[str] | None, typer.Option(help="Only dead letters with this reason (repeatable)")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Ignore the progress of earlier replays")] = False,
    dry_run: Annotated[bool, typer.Option(help="Count what would be replayed; send and commit nothing")] = False,
) -> None:
    """Re-send dead letters to cx.touchpoints; progress is committed, so a second run re-sends nothing."""
    from cxj.dlq import replay

    stats = replay(_kafka_settings(ctx), reasons=set(reason or ()) or None, from_beginning=from_beginning,
                   dry_run=dry_run)  # fmt: skip
    verb = "would replay" if dry_run else "replayed"
    detail = ", ".join(f"{r} {n}" for r, n in stats.by_reason.most_common()) or "none"
    console.print(f"read {stats.read:,} dead letters; {verb} {stats.replayed:,} ({detail})")
    if stats.skipped:
        console.print("skipped (other reasons): " + ", ".join(f"{r} {n}" for r, n in stats.skipped.most_common()))
    if stats.incomplete:
        err.print("[yellow]the broker stopped answering before the end of the DLQ; progress so far is committed, "
                  "run the command again to continue[/]")  # fmt: skip


@app.command()
def forget(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Argument(help="Customer key as stored: a customer_id or ~kind:value")] = None,
    identifier: Annotated[
        str | None, typer.Option(help="Or an identifier: phone:+86…, email:…, anon:…, device:…, wechat:…")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the workers' acknowledgements")] = 120.0,
) -> None:
    """Erase a customer everywhere: worker state, identity links, every ClickHouse table (GDPR/PIPL erasure)."""
    from cxj.forget import forget as erase

    report = erase(_kafka_settings(ctx), customer, identifier=identifier, timeout=timeout)
    rows = ", ".join(f"{t} {n:,}" for t, n in report.rows.items() if n) or "none"
    console.print(
        f"forgot {report.key}: {report.identifiers} identifiers unlinked, {report.keys} keys, "
        f"{report.state_entries} worker state entries erased; ClickHouse rows deleted: {rows} "
        f"(request {report.request_id}, {report.seconds:.1f} s)"
    )


# --- benchmarks --------------------------------------------------------------------------------


def main() -> None:
    try:
        app()
    except CxjError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
