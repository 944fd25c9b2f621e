"""The Faust app built from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.runtime.app import create_app


@pytest.mark.parametrize("wait_ms", [50, 250])
async def test_the_worker_consumer_fetches_with_the_configured_wait_not_faust_s_fixed_one(
    tmp_path: Path, wait_ms: int
) -> None:
    settings = Settings(home=tmp_path, kafka_fetch_max_wait_ms=wait_ms)  # type: ignore[call-arg]
    app = create_app(settings)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # built, never started
    assert consumer._fetch_max_wait_ms == wait_ms
    assert consumer._client is not None
    await consumer._client.close()
