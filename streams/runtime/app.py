"""The faust.App of cx-journeys, built from the settings."""

from __future__ import annotations

import faust

from schemas.settings import Settings
from streams.runtime.consumer import App

__all__ = ["create_app"]


def create_app(settings: Settings) -> App:
    """A Faust app on the configured broker; topics are created by `cxj init`, never here."""
    credentials: faust.SASLCredentials | faust.SSLCredentials | None = None
    opts = settings.kafka_client_options()
    context = settings.kafka_ssl_context()
    if settings.kafka_security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=opts["sasl_plain_username"],
            password=opts["sasl_plain_password"],
            mechanism=opts["sasl_mechanism"],
            ssl_context=context,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=credentials,
        store="memory://",
        datadir=str(settings.home / "worker"),
        web_enabled=True,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # A join waits for the whole rebalance timeout on the local broker: keep it short, and
        # the poll interval long, or workers stall on every rebalance.
        broker_rebalance_timeout=settings.kafka_rebalance_timeout,
        broker_session_timeout=max(10.0, settings.kafka_rebalance_timeout * 3),
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=settings.kafka_max_poll_interval,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        producer_linger_ms=5,
        logging_config=None,
    )
    app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    return app
