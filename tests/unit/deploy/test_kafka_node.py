"""The local broker's configuration (deploy/local/kafka.py), without starting Java."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.kafka import KafkaNode, SaslListener
from schemas.errors import StackError


def test_a_plain_node_listens_on_loopback_creates_no_topic_and_keeps_its_controller_port(tmp_path: Path) -> None:
    node = KafkaNode(tmp_path, 19092)
    props = node.properties()
    controller = node.controller_port
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:{controller}"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"  # never the controller
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{controller}"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert KafkaNode(tmp_path, 19092).controller_port == controller  # chosen once per home
    assert not node.formatted


def test_a_sasl_ssl_listener_offers_scram_and_plain_with_its_keystore(tmp_path: Path) -> None:
    sasl = SaslListener(19094, tmp_path / "broker.pem", scram_users={"w": "pw"}, plain_users={"f": "pf"})
    props = KafkaNode(tmp_path, 19092, sasl=sasl).properties()
    name = "listener.name.sasl_ssl."
    assert "SASL_SSL://127.0.0.1:19094" in props["listeners"].split(",")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"].split(",")
    assert props[name + "sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    assert props[name + "ssl.keystore.type"] == "PEM" and name + "ssl.key.password" not in props
    assert "ScramLoginModule" in props[name + "scram-sha-512.sasl.jaas.config"]
    assert props[name + "plain.sasl.jaas.config"].endswith('required user_f="pf";')
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # the node talks to itself on loopback


def test_a_pkcs12_keystore_carries_its_password(tmp_path: Path) -> None:
    sasl = SaslListener(19094, tmp_path / "broker.p12", "secret", scram_users={"w": "pw"})
    props = KafkaNode(tmp_path, 19092, sasl=sasl).properties()
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PKCS12"
    assert props["listener.name.sasl_ssl.ssl.keystore.password"] == "secret"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"


def test_a_plain_password_that_would_break_the_jaas_line_is_refused(tmp_path: Path) -> None:
    sasl = SaslListener(19094, tmp_path / "broker.pem", plain_users={"f": 'p"w'})
    with pytest.raises(StackError, match="quotes"):
        KafkaNode(tmp_path, 19092, sasl=sasl).properties()
