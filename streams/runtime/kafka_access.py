"""Can this process reach the broker with its settings? One connection, a clear answer in a second or two.

Kafka clients treat a refused password or an unknown certificate authority like a broker that is not up yet:
kafka-python retries until its bootstrap timeout, Faust logs and exits, aiokafka says "Unable to bootstrap".
Every command that talks to Kafka (`cxj worker`, `init`, `simulate`, `dlq replay`, `forget`, `check`) first
opens one connection with the same settings and turns a failure into a `KafkaAccessError` that names the
setting to fix.
"""

from __future__ import annotations

import asyncio
import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from schemas.errors import KafkaAccessError
from schemas.settings import Settings

__all__ = ["check_kafka_access"]


def check_kafka_access(settings: Settings, timeout: float = 10.0) -> None:
    """Raise `KafkaAccessError` unless one bootstrap server accepts a connection with these settings."""
    asyncio.run(_check(settings, timeout))


async def _check(settings: Settings, timeout: float) -> None:
    servers = [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]
    if not servers:
        raise KafkaAccessError("CXJ_KAFKA_BOOTSTRAP is empty: give host:port of at least one broker")
    failures: list[str] = []
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaAccessError(f"CXJ_KAFKA_BOOTSTRAP: {server!r} is not host:port")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **settings.aiokafka_options()),
                timeout,
            )
        except SaslAuthenticationFailed as exc:
            # The broker answered and said no: no other server will say otherwise.
            raise KafkaAccessError(
                f"the broker at {server} refused {settings.kafka_sasl_mechanism} credentials for user "
                f"{settings.kafka_sasl_username!r}: check CXJ_KAFKA_SASL_USERNAME and CXJ_KAFKA_SASL_PASSWORD "
                f"(broker: {exc})"
            ) from None
        except UnsupportedSaslMechanismError as exc:
            raise KafkaAccessError(
                f"the broker at {server} does not offer CXJ_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism} "
                f"({exc})"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaAccessError(
                f"the broker at {server} presented a certificate that CXJ_KAFKA_SSL_CAFILE "
                f"({settings.kafka_ssl_cafile or 'the system CAs'}) does not trust: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaAccessError(
                f"TLS with the broker at {server} failed ({exc.reason}): is CXJ_KAFKA_SECURITY_PROTOCOL="
                f"{settings.kafka_security_protocol} what its listener speaks?"
            ) from None
        except TimeoutError:
            failures.append(f"{server}: no answer within {timeout:.0f} s")
        except (OSError, KafkaError) as exc:
            failures.append(f"{server}: {exc}")
        else:
            conn.close()
            return
    hint = ""
    if any("no answer" in f or "closed" in f.lower() for f in failures):
        hint = f" (a listener of another protocol than CXJ_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}?)"
    raise KafkaAccessError(f"no broker of CXJ_KAFKA_BOOTSTRAP answers: {'; '.join(failures)}{hint}")
