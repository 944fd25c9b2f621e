"""`/openapi.json`: the two endpoints, their answers and the touchpoint they take, from the contract's models."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from schemas.api import Accepted, ApiError, Profile
from schemas.touchpoint import Touchpoint, TouchpointBatch

__all__ = ["document"]

_REF = "#/components/schemas/{model}"
_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ApiError")}}},
    }
    if retry:
        answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return answer


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of `cxj serve`."""
    _, defs = models_json_schema([(m, "serialization") for m in (Accepted, ApiError, Profile)],
                                 ref_template=_REF)  # fmt: skip
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for name, model in (("Touchpoint", Touchpoint), ("TouchpointBatch", TouchpointBatch)):
        schema = TypeAdapter(model).json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    auth: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cx-journeys",
            "version": "1",
            "description": "Touchpoints in (Contract 1 of docs/contract.md), customer profiles out.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/touchpoints": {
                "post": {
                    "operationId": "sendTouchpoints",
                    "summary": "One touchpoint, or a batch of up to 1,000; answered once the broker has them",
                    "security": auth,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": _REF.format(model="Touchpoint")},
                                        {"$ref": _REF.format(model="TouchpointBatch")},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "the broker acknowledged the write; `rejected` will be dead letters",
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Accepted")}}},
                        },
                        "400": _error("not JSON, not an object, or a batch envelope without touchpoints"),
                        "401": _error("no token, or one CXJ_API_TOKENS does not know"),
                        "403": _error("the token may not send a touchpoint's source"),
                        "413": _error("over 8 MiB, 1,000 touchpoints, or 64 KiB for a single touchpoint"),
                        "429": _error("over the token's rate", retry=True),
                        "503": _error("the broker did not acknowledge; nothing was stored", retry=True),
                    },
                }
            },
            "/v1/customers/{id}": {
                "get": {
                    "operationId": "getCustomer",
                    "summary": "A customer's profile: risk, the experiences that count, journeys, touchpoints, alerts",
                    "security": auth,
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "description": "a customer key, or an identifier: phone:+86 138 0013 8000, email:…, "
                            "anon:…, device:…, wechat:…",
                            # what `sinks.customers.printable` takes: a visible character, no control characters
                            "schema": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": _ID_PATTERN},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the customer the id resolves to (merged keys answer with their customer)",
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Profile")}}},
                        },
                        "400": _error("not an id the service can read"),
                        "401": _error("no token, or one CXJ_API_TOKENS does not know"),
                        "403": _error("the token may not read profiles"),
                        "404": _error("no customer with this id"),
                        "503": _error("ClickHouse does not answer", retry=True),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "alive, and the broker's state",
                    "responses": {"200": {"description": "alive"}},
                }
            },
        },
    }
