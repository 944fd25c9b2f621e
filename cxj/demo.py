"""`cxj demo`: the whole pipeline on the local stack, with simulated traffic, then the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from urllib.parse import quote

from rich.console import Console

from schemas.errors import StackError
from schemas.settings import Settings, load_settings

__all__ = ["ChildProcess", "ServiceProcess", "WorkerProcess", "run_demo", "wait_drained"]


class ChildProcess:
    """A `cxj` command as a child process, logging to <home>/logs/<name>.log, ready once an HTTP path of its
    answers 200; stopped with SIGTERM (then SIGKILL after `timeout`)."""

    def __init__(self, settings: Settings, name: str, env: dict[str, str] | None) -> None:
        self.settings = settings
        self.env = env  # the child's whole environment (default: this process's)
        self.log_path = settings.home / "logs" / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self, args: list[str], host: str, port: int, path: str, timeout: float, what: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "cxj", "--home", str(self.settings.home), *args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        deadline = time.monotonic() + timeout
        url = f"http://{host}:{port}{path}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"{what} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise StackError(f"{what} did not serve {url} within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class WorkerProcess(ChildProcess):
    """`cxj worker` as a child process, logging to <home>/logs/<name>.log; ready once /metrics answers."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str = "worker",
        web_port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(settings, name, env)
        self.web_port = web_port or settings.worker_web_port

    def start(self, timeout: float = 60.0) -> None:
        args = ["worker", "--web-port", str(self.web_port), "--loglevel", "info"]
        self._start(args, self.settings.worker_web_host, self.web_port, "/metrics", timeout, "worker")

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric on the worker's /metrics, None when absent or unreachable."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{self.settings.worker_web_host}:{self.web_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return None

    def wait_alerts_released(self, timeout: float) -> None:
        """Block until no anonymous key's alert is held (they come due after the hold).

        First waits out one refresh of `cx_churn_alerts_held` by the worker's 5 s timer: a worker that
        just restarted has restored holds it has not published yet (it publishes on a hand-over too).
        """
        time.sleep(6.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("cx_churn_alerts_held") == 0:
                self._wait_flushed(deadline)
                return
            time.sleep(1.0)
        raise StackError(f"churn alerts still held after {timeout:.0f} s; see {self.log_path}")

    def _wait_flushed(self, deadline: float) -> None:
        """Until rows handed to the flusher before now are in ClickHouse: a release is published when
        its rows are handed over, a flush later they are stored. Two flushes from now (one may have
        begun before the hand-over), or a few flush intervals with nothing to flush."""
        start = self.metric("cx_flush_seconds_count") or 0.0
        quiet = time.monotonic() + 3 * self.settings.sink_flush_seconds + 1.0
        while time.monotonic() < min(deadline, quiet):
            if (self.metric("cx_flush_seconds_count") or 0.0) >= start + 2:
                return
            time.sleep(0.2)

    def kill(self) -> None:
        """kill -9: the crash the reliability suite injects."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class ServiceProcess(ChildProcess):
    """`cxj serve` as a child process, logging to <home>/logs/serve.log; ready once /healthz answers."""

    def __init__(self, settings: Settings, *, port: int | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(settings, "serve", env)
        self.port = port or settings.api_port
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._start(["serve", "--port", str(self.port)], "127.0.0.1", self.port, "/healthz", timeout, "cxj serve")


def wait_drained(settings: Settings, timeout: float, *, settle: float = 1.0) -> float:
    """Block until the worker group has committed every input offset (twice in a row)."""
    from streams.runtime.topics import consumer_lag

    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        lag = consumer_lag(settings)
        quiet = quiet + 1 if not any(lag.values()) else 0
        if quiet >= 2:
            return time.monotonic()
        time.sleep(settle)
    raise StackError(f"pipeline not drained after {timeout:.0f} s: lag {consumer_lag(settings)}")


def _show_profile(settings: Settings, console: Console, port: int) -> None:
    """The most at-risk customer's profile over HTTP (as a desk tool would ask), and the curl for it."""
    from cxj.customer import render
    from schemas.api import Profile
    from sinks.clickhouse import ClickHouse

    top = ClickHouse(settings.clickhouse_bi).query(
        "SELECT customer_key FROM {db}.customer_experience FINAL WHERE merged_into = '' "
        "ORDER BY dissatisfied_90d DESC, lifetime_value DESC, customer_key LIMIT 1"
    )
    if not top or settings.api_token is None:
        return
    key = str(top[0][0])
    path = f"/v1/customers/{quote(key, safe='')}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the local service, http only
        render(Profile.model_validate_json(answer.read()), console)
    console.print(f'curl -H "Authorization: Bearer $CXJ_API_TOKEN" http://127.0.0.1:{port}{path}'
                  "  (CXJ_API_TOKEN is in .cxj/stack.env; `cxj customer KEY` shows the same)")  # fmt: skip


def run_demo(
    settings: Settings, console: Console, *, events: int, customers: int, batch_size: int, seed: int,
    timeout: float,
) -> None:  # fmt: skip
    from cxj.check import render as render_checks
    from cxj.check import run_all
    from cxj.report import collect, render
    from cxj.report_html import collect_html, render_html
    from cxj.simulate import SimulationConfig, generate_raw, messages, produce_messages
    from cxj.simulate.http import post
    from deploy.local.stack import LocalStack
    from sinks.clickhouse import ClickHouse
    from sinks.migrate import migrate
    from streams.runtime.topics import create_topics

    console.rule("[bold]1. local stack")
    LocalStack(settings).up()
    settings = load_settings(home=settings.home)  # endpoints and credentials from stack.env
    console.print("broker, ClickHouse, Prometheus and Alertmanager answer")
    console.rule("[bold]2. topics and schema")
    create_topics(settings)
    migrate(ClickHouse(settings.clickhouse_schema_admin))
    console.rule("[bold]3. worker and HTTP service")
    worker = WorkerProcess(settings)
    worker.start()
    console.print(f"worker up; metrics at http://127.0.0.1:{settings.worker_web_port}/metrics")
    service = ServiceProcess(settings)
    try:
        service.start()
        console.print(f"cxj serve up at {service.url} (POST /v1/touchpoints, GET /v1/customers/{{id}})")
        console.rule(f"[bold]4. {events:,} simulated touchpoints from {customers:,} customers")
        config = SimulationConfig(
            seed=seed, customers=customers, events=events, days=60.0, now=datetime.now(UTC),
            invalid_share=0.01, region=settings.default_region,
        )  # fmt: skip
        outgoing = list(messages(generate_raw(config), batch_size))
        # A fifth of the batches as a web front end would send them, over HTTP; the rest straight to Kafka.
        via_http = [m for i, m in enumerate(outgoing) if i % 5 == 0 and m[2] > 1]
        via_kafka = [m for i, m in enumerate(outgoing) if not (i % 5 == 0 and m[2] > 1)]
        started = time.monotonic()
        stats = produce_messages(settings, via_kafka, total=sum(m[2] for m in via_kafka), progress=True)
        posted = post(settings, via_http)
        console.print(f"POST /v1/touchpoints: {posted.sent_messages:,} requests, {posted.accepted:,} touchpoints "
                      f"accepted, {posted.rejected:,} rejected (they become dead letters), "
                      f"{posted.events_per_second:,.0f} touchpoints/s")  # fmt: skip
        drained = wait_drained(settings, timeout)
        seconds = drained - started
        sent = stats.sent_events + posted.sent_events
        hold = settings.anonymous_alert_hold_seconds
        console.print(f"waiting up to {hold} s for the alerts anonymous keys hold until they are linked "
                      "(CXJ_ANONYMOUS_ALERT_HOLD_SECONDS)")  # fmt: skip
        worker.wait_alerts_released(hold + 30)
        console.print(
            f"sent {sent:,} touchpoints ({stats.sent_messages + posted.sent_messages:,} messages); pipeline "
            f"drained in {seconds:.1f} s: [bold]{sent / seconds:,.0f} events/s end to end[/]"
        )
        console.rule("[bold]5. report")
        render(collect(ClickHouse(settings.clickhouse_bi)), console)
        page = settings.home / "report.html"
        page.write_text(render_html(collect_html(ClickHouse(settings.clickhouse_bi))))
        console.print(f"HTML report with charts: {page.resolve()}")
        console.rule("[bold]6. the next call: a customer at risk, as an agent sees them")
        _show_profile(settings, console, service.port)
        console.rule("[bold]7. cxj check")
        results = run_all(ClickHouse(settings.clickhouse_bi), settings)
        render_checks(results, console)
    finally:
        service.stop()
        worker.stop()
    if not all(r.ok for r in results):
        raise StackError("cxj check failed after the demo: see the table above")
    console.print(f"The stack keeps running; `cxj report` reads it again, `cxj stack down` stops it ({settings.home}).")
