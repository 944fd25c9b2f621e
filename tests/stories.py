"""The identity story of issue #3 as wire touchpoints: one customer, five channels, three strikes.

An anonymous web chat goes badly; a WeChat complaint and a phone call arrive from a phone number in two other
spellings; a survey answered by e-mail rates that call; finally an app login ties the anonymous id, the device,
the phone and the e-mail to the customer_id. Whatever the order, everything ends on the customer with three
dissatisfying experiences (chat contact, complaint case, phone contact) and one alert.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.factories import touchpoint


@dataclass(frozen=True)
class Story:
    customer_id: str
    events: dict[str, dict[str, Any]]  # step name -> touchpoint

    @property
    def experience_keys(self) -> set[str]:
        return {
            f"contact:{self.events['chat']['context']['contact_id']}",
            f"case:{self.events['wechat']['context']['case_id']}",
            f"contact:{self.events['call']['context']['contact_id']}",
        }  # fmt: skip

    @property
    def event_ids(self) -> set[str]:
        return {e["event_id"] for e in self.events.values()}


def identity_story(run: str, start: datetime, rng: random.Random | None = None) -> Story:
    rng = rng or random.Random(run)
    digits = f"{rng.randrange(10**8):08d}"
    national = f"138{digits}"
    spellings = (f"+86 138 {digits[:4]} {digits[4:]}", f"138-{digits[:4]}-{digits[4:]}", f"+86{national}")
    customer = f"C-{run}"
    anon, device, openid = f"anon-{run}", f"dev-{run}", f"wx-{run}"
    email = f"Jane.{run}@Example.COM"
    at = [start + timedelta(hours=h) for h in (0, 30, 50, 52, 80)]
    events = {
        "chat": touchpoint(
            "contact_ended", channel="chat", at=at[0], identity={"anonymous_id": anon},
            context={"contact_id": f"chat-{run}", "session_id": f"s-{run}"},
            metrics={"wait_seconds": 240, "transfers": 0, "handled_by": "bot", "resolved": False},
            event_id=f"{run}-chat",
        ),
        "wechat": touchpoint(
            "complaint_filed", channel="wechat", at=at[1], identity={"wechat_openid": openid, "phone": spellings[0]},
            context={"case_id": f"case-{run}"}, event_id=f"{run}-wechat",
        ),
        "call": touchpoint(
            "contact_ended", channel="phone", at=at[2], identity={"phone": spellings[1]},
            context={"contact_id": f"call-{run}"},
            metrics={"wait_seconds": 420, "transfers": 3, "handled_by": "human", "resolved": False},
            event_id=f"{run}-call",
        ),
        "email": touchpoint(
            "survey_response", channel="email", at=at[3], identity={"email": f"  {email} "},
            context={"contact_id": f"call-{run}"}, metrics={"csat": 1}, event_id=f"{run}-email",
        ),
        "login": touchpoint(
            "login", channel="app", at=at[4], event_id=f"{run}-login",
            identity={"customer_id": customer, "anonymous_id": anon, "device_id": device, "phone": spellings[2],
                      "email": email.lower()},
        ),
    }  # fmt: skip
    return Story(customer, events)
