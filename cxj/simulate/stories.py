"""The customer stories: whole episodes, good and bad, that the engine runs (docs/contract.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from cxj.simulate.engine import _CITIES, _QUERIES, DAY, HOUR, MIN, SEC, _Customer, _Engine

Story = Callable[[_Engine, _Customer, int], None]


def _who(e: _Engine, c: _Customer, channel: str, known: bool) -> dict[str, str]:
    """What a channel knows about the person: caller id, WeChat openid, login, e-mail address."""
    if channel in ("phone", "ivr", "sms"):
        ident = {"phone": e.pick(c.phones)}
    elif channel == "wechat":
        ident = {"wechat_openid": c.wechat}
    elif channel == "email":
        ident = {"email": e.pick(c.emails)}
    else:
        return {"customer_id": c.cid}
    if known:
        ident["customer_id"] = c.cid
    return ident


def _browse(e: _Engine, c: _Customer, t: int) -> None:
    """A web or app session; anonymous web visitors often log in, which stitches their cookie."""
    ctx = {"session_id": e.new_id("S")}
    anon = ""
    if e.chance(0.4):
        channel, ident = "app", {"customer_id": c.cid, "device_id": c.device}
        e.ev(t, channel, "app_open", ident, ctx)
    else:
        channel = "web"
        if e.chance(0.55):
            if e.chance(0.15):  # cookies get cleared now and then
                c.cookie = e.new_id("anon")
            anon = c.cookie
            ident = {"anonymous_id": anon, "device_id": c.browser}
        else:
            ident = {"customer_id": c.cid, "device_id": c.browser}
        e.ev(t, channel, "page_view", ident, ctx, attributes={"path": "/"})
    for _ in range(e.between(1, 5)):
        t += e.between(5 * SEC, 90 * SEC)
        r = e.rng.random()
        if r < 0.3:
            e.ev(t, channel, "search", ident, ctx, attributes={"query": e.pick(_QUERIES)})
        elif r < 0.75:
            e.ev(t, channel, "product_view", ident, ctx, attributes={"sku": f"SKU-{e.between(1000, 9999)}"})
        else:
            e.ev(t, channel, "page_view", ident, ctx)
    if e.chance(0.35):
        t += e.between(10 * SEC, 60 * SEC)
        e.ev(t, channel, "add_to_cart", ident, ctx)
    if anon and e.chance(0.7):
        t += e.between(20 * SEC, 120 * SEC)
        login = {"customer_id": c.cid, "anonymous_id": anon, "device_id": c.browser}
        method = e.random()
        if method < 0.5:  # the usual way in China: a one-time code by SMS
            login["phone"] = e.pick(c.phones)
        elif method < 0.7:
            login["wechat_openid"] = c.wechat
        how = "sms_code" if method < 0.5 else "wechat" if method < 0.7 else "password"
        e.ev(t, channel, "login", login, ctx, attributes={"method": how})


def _checkout(e: _Engine, c: _Customer, t: int) -> tuple[str, int, float, str]:
    """checkout_started, order_placed (linking the phone or e-mail typed into the form)."""
    channel = "app" if e.chance(0.55) else "web"
    ctx = {"session_id": e.new_id("S")}
    e.ev(t, channel, "checkout_started", {"customer_id": c.cid}, ctx)
    order = c.last_order = e.new_id("O")
    ident = {"customer_id": c.cid}
    if e.chance(0.8):  # the delivery address has a phone number
        ident["phone"] = e.pick(c.phones)
    if e.chance(0.35):
        ident["email"] = e.pick(c.emails)
    amount = round(min(e.rng.lognormvariate(5.3, 0.9), 50_000.0), 2)
    t += e.between(30 * SEC, 240 * SEC)
    e.ev(t, channel, "order_placed", ident, {"order_id": order, **ctx}, {"amount": amount, "currency": "CNY"})
    return order, t, amount, channel


def _notify(e: _Engine, c: _Customer, t: int, order: str, template: str) -> None:
    """A proactive update ("your parcel reached Guangzhou") by SMS, push, WeChat or e-mail."""
    channel = e.pick(("sms", "sms", "app", "wechat", "email"))
    if channel == "app":
        ident = {"customer_id": c.cid, "device_id": c.device}
    else:
        ident = _who(e, c, channel, e.chance(0.7))
    e.ev(t, channel, "notification_sent", ident, {"order_id": order}, attributes={"template": template})


def _carrier(e: _Engine, c: _Customer) -> dict[str, str]:
    return {"customer_id": c.cid} if e.chance(0.6) else {"phone": e.pick(c.phones)}


def _survey(e: _Engine, c: _Customer, t: int, ctx: dict[str, str], happy: bool, service: bool) -> None:
    """A survey about a contact or order; it carries the episode's context, so adds no new experience."""
    channel = e.pick(("survey", "survey", "email", "sms"))
    ident = _who(e, c, channel, e.chance(0.5)) if channel != "survey" else {"customer_id": c.cid}
    metrics: dict[str, Any] = {"csat": e.between(4, 6) if happy else e.between(1, 3)}
    if service:
        metrics["ces"] = e.between(5, 8) if happy else e.between(1, 4)
    else:
        metrics["nps"] = e.between(9, 11) if happy else e.between(0, 6)
    e.ev(t, channel, "survey_response", ident, ctx, metrics)


def _contact(
    e: _Engine, c: _Customer, t: int, channel: str, base: dict[str, str], *,
    wait: int, handled: str, transfers: int, resolved: bool,
) -> tuple[dict[str, str], int]:  # fmt: skip
    """contact_started .. agent_answered .. transferred .. contact_ended, minutes apart."""
    ctx = {**base, "contact_id": e.new_id("K")}
    caller = _who(e, c, channel, channel == "chat" or (channel == "wechat" and e.chance(0.5)))
    e.ev(t, channel, "contact_started", caller, ctx)
    if handled == "human":
        t += wait * SEC
        verified = {**caller, "customer_id": c.cid}
        metrics = {"wait_seconds": wait, "handled_by": "human"}
        e.ev(t, channel, "agent_answered", verified, {**ctx, "agent_id": f"A{e.between(100, 400)}"}, metrics)
        for i in range(1, transfers + 1):
            t += e.between(MIN, 5 * MIN)
            e.ev(t, channel, "transferred", verified, ctx, {"transfers": i})
        caller = verified
        t += e.between(2 * MIN, 12 * MIN)
    else:
        t += e.between(30 * SEC, 4 * MIN)
    attrs = {"reply": "canned"} if handled == "bot" and not resolved else None
    metrics = {"wait_seconds": wait, "transfers": transfers, "handled_by": handled, "resolved": resolved}
    e.ev(t, channel, "contact_ended", caller, ctx, metrics, attrs)
    return ctx, t


def _purchase(e: _Engine, c: _Customer, t: int) -> None:
    """Order, payment, proactive updates along the way, delivery, a good review; sometimes a return."""
    order, t, amount, channel = _checkout(e, c, t)
    ctx = {"order_id": order}
    t += e.between(5 * SEC, 60 * SEC)
    e.ev(t, channel, "payment_completed", {"customer_id": c.cid}, ctx, {"amount": amount, "currency": "CNY"})
    if e.chance(0.6):
        _notify(e, c, t + e.between(10 * SEC, 60 * SEC), order, "order_confirmed")
    t += e.between(4 * HOUR, 30 * HOUR)
    e.ev(t, "logistics", "shipment_dispatched", _carrier(e, c), ctx)
    t += e.between(10 * HOUR, 30 * HOUR)
    city = e.pick(_CITIES)
    e.ev(t, "logistics", "shipment_update", _carrier(e, c), ctx, attributes={"city": city})
    if e.chance(0.8):
        _notify(e, c, t + e.between(MIN, 20 * MIN), order, f"parcel_reached_{city.lower()}")
    t += e.between(6 * HOUR, 30 * HOUR)
    e.ev(t, "logistics", "delivered", _carrier(e, c), ctx)
    if e.chance(0.3):
        e.ev(t + e.between(2 * HOUR, 3 * DAY), channel, "review_posted", {"customer_id": c.cid}, ctx,
             {"rating": e.between(4, 6)})  # fmt: skip
    elif e.chance(0.2):
        _survey(e, c, t + e.between(HOUR, 2 * DAY), ctx, happy=True, service=False)
    if e.chance(0.06):
        t += e.between(DAY, 5 * DAY)
        e.ev(t, channel, "return_requested", {"customer_id": c.cid}, ctx)
        t += e.between(DAY, 3 * DAY)
        e.ev(t, channel, "refund_issued", {"customer_id": c.cid}, ctx, {"amount": amount, "currency": "CNY"})
        _notify(e, c, t + e.between(MIN, 10 * MIN), order, "refund_issued")


def _service(e: _Engine, c: _Customer, t: int) -> None:
    """A question answered at once by a person or a bot that knows the answer; a good survey."""
    channel = e.pick(("phone", "chat", "chat", "wechat"))
    base = {"order_id": c.last_order} if c.last_order and e.chance(0.4) else {}
    handled = "bot" if channel != "phone" and e.chance(0.35) else "human"
    ctx, t = _contact(e, c, t, channel, base, wait=e.between(3, 45), handled=handled,
                      transfers=int(e.chance(0.15)), resolved=True)  # fmt: skip
    if e.chance(0.45):
        _survey(e, c, t + e.between(5 * MIN, 2 * HOUR), ctx, happy=True, service=True)


def _store(e: _Engine, c: _Customer, t: int) -> None:
    """A store purchase; members check in at a kiosk shared by everyone (its device id must not glue them)."""
    store = f"ST{e.between(1, 41):03d}"
    if e.chance(0.4):
        e.ev(t, "store", "login", {"customer_id": c.cid, "device_id": f"kiosk-{store}"}, {"store_id": store})
        t += e.between(5 * MIN, 40 * MIN)
    order = c.last_order = e.new_id("O")
    ctx = {"order_id": order, "store_id": store}
    amount = round(e.rng.lognormvariate(5.0, 0.7), 2)
    ident = {"customer_id": c.cid, "phone": e.pick(c.phones)}
    e.ev(t, "store", "order_placed", ident, ctx, {"amount": amount, "currency": "CNY"})
    e.ev(t + e.between(20 * SEC, 3 * MIN), "store", "payment_completed", {"customer_id": c.cid}, ctx,
         {"amount": amount, "currency": "CNY"})  # fmt: skip
    if e.chance(0.3):
        _survey(e, c, t + e.between(HOUR, DAY), ctx, happy=True, service=False)


def _promoter(e: _Engine, c: _Customer, t: int) -> None:
    """A relationship NPS survey from a fan."""
    ident = {"email": e.pick(c.emails)} if e.chance(0.5) else {"customer_id": c.cid}
    e.ev(t, "survey", "survey_response", ident, None, {"nps": e.between(9, 11)})


def _social(e: _Engine, c: _Customer, t: int, low: float, high: float) -> None:
    ident = {"customer_id": c.cid} if e.chance(0.6) else {"wechat_openid": c.wechat}
    sentiment = round(low + e.rng.random() * (high - low), 2)
    platform = e.pick(("weibo", "xiaohongshu", "douyin", "wechat_moments"))
    e.ev(t, "social", "social_mention", ident, None, {"sentiment": sentiment}, {"platform": platform})


def _praise(e: _Engine, c: _Customer, t: int) -> None:
    """A happy post online."""
    _social(e, c, t, 0.3, 1.0)


def _rant(e: _Engine, c: _Customer, t: int) -> None:
    """37% of those who leave complain online: a public rant is its own bad experience."""
    _social(e, c, t, -1.0, -0.55)


def _detractor(e: _Engine, c: _Customer, t: int) -> None:
    """A relationship NPS survey from someone who would not recommend us."""
    ident = {"email": e.pick(c.emails)} if e.chance(0.5) else {"customer_id": c.cid}
    channel = "email" if "email" in ident else "survey"
    e.ev(t, channel, "survey_response", ident, None, {"nps": e.between(0, 7)})


def _service_hell(e: _Engine, c: _Customer, t: int) -> None:
    """Nobody answers, or the wait is long and the transfers many; a case, a repeat contact, a complaint.

    Every touchpoint carries the case id, so the whole ordeal is one dissatisfying experience.
    """
    base = {"case_id": e.new_id("CS")}
    if c.last_order and e.chance(0.5):
        base["order_id"] = c.last_order
    start = t
    if e.chance(0.35):  # the IVR bot never lets go
        ctx, t = _contact(e, c, t, "ivr", base, wait=e.between(0, 20), handled=e.pick(("none", "bot")),
                          transfers=0, resolved=False)  # fmt: skip
    else:
        transfers = e.between(2, 5) if e.chance(0.75) else e.between(0, 2)
        ctx, t = _contact(e, c, t, "phone", base, wait=e.between(90, 1500), handled="human",
                          transfers=transfers, resolved=False)  # fmt: skip
    opened = {**base, "contact_id": ctx["contact_id"]}
    crm = {"customer_id": c.cid, "phone": e.pick(c.phones)}  # the CRM matched the caller id
    e.ev(start + e.between(20 * SEC, 60 * SEC), "phone", "case_opened", crm, opened, source="crm")
    for _ in range(3):  # calling back about the same case: a repeat contact
        t += e.between(6 * HOUR, 3 * DAY)
        resolved = e.chance(0.45)
        ctx, t = _contact(e, c, t, e.pick(("phone", "chat", "wechat")), base, wait=e.between(20, 900),
                          handled="human", transfers=e.between(0, 3), resolved=resolved)  # fmt: skip
        if resolved or e.chance(0.5):
            break
    if e.chance(0.5):
        t += e.between(10 * MIN, DAY)
        e.ev(t, e.pick(("wechat", "web", "email", "app")), "complaint_filed", {"customer_id": c.cid}, base)
        if e.chance(0.45):
            t += e.between(HOUR, 2 * DAY)
            e.ev(t, e.pick(("phone", "wechat")), "compensation_offered", {"customer_id": c.cid}, base,
                 {"amount": float(e.between(20, 200)), "currency": "CNY"})  # fmt: skip
    if e.chance(0.6):
        _survey(e, c, t + e.between(10 * MIN, DAY), ctx, happy=False, service=True)
    if resolved or e.chance(0.5):
        t += e.between(HOUR, 5 * DAY)
        e.ev(t, "phone", "case_resolved", {"customer_id": c.cid}, base, source="crm")


def _late_delivery(e: _Engine, c: _Customer, t: int) -> None:
    """The parcel is late with no word from us; "where is my parcel?"; a bad review."""
    order, t, amount, channel = _checkout(e, c, t)
    ctx = {"order_id": order}
    t += e.between(5 * SEC, 60 * SEC)
    e.ev(t, channel, "payment_completed", {"customer_id": c.cid}, ctx, {"amount": amount, "currency": "CNY"})
    t += e.between(4 * HOUR, 30 * HOUR)
    e.ev(t, "logistics", "shipment_dispatched", _carrier(e, c), ctx)
    t += e.between(DAY, 60 * HOUR)
    reason = e.pick(("weather", "backlog", "address_issue", "lost_in_transit"))
    e.ev(t, "logistics", "delivery_delayed", _carrier(e, c), ctx, attributes={"reason": reason})
    if e.chance(0.5):  # its own episode: a contact about the order
        bot = e.chance(0.5)
        _contact(e, c, t + e.between(HOUR, 8 * HOUR), e.pick(("chat", "wechat", "phone")), ctx,
                 wait=e.between(0, 10) if bot else e.between(40, 600), handled="bot" if bot else "human",
                 transfers=e.between(0, 3), resolved=e.chance(0.4))  # fmt: skip
    if e.chance(0.35):
        t += e.between(DAY, 2 * DAY)
        e.ev(t, "logistics", "delivery_delayed", _carrier(e, c), ctx, attributes={"reason": reason})
    if e.chance(0.15):
        t += e.between(HOUR, DAY)
        e.ev(t, channel, "order_cancelled", {"customer_id": c.cid}, ctx)
        e.ev(t + e.between(HOUR, 2 * DAY), channel, "refund_issued", {"customer_id": c.cid}, ctx,
             {"amount": amount, "currency": "CNY"})  # fmt: skip
        return
    t += e.between(DAY, 3 * DAY)
    e.ev(t, "logistics", "delivered", _carrier(e, c), ctx)
    if e.chance(0.5):
        e.ev(t + e.between(HOUR, 2 * DAY), channel, "review_posted", {"customer_id": c.cid}, ctx,
             {"rating": e.between(1, 3)}, {"text": "late and nobody told me"})  # fmt: skip


def _payment_trouble(e: _Engine, c: _Customer, t: int) -> None:
    """The payment fails, maybe twice; the customer retries or gives up."""
    order, t, amount, channel = _checkout(e, c, t)
    ctx = {"order_id": order}
    money = {"amount": amount, "currency": "CNY"}
    reason = {"reason": e.pick(("card_declined", "bank_timeout", "risk_check"))}
    for _ in range(1 + int(e.chance(0.4))):
        t += e.between(10 * SEC, 120 * SEC)
        e.ev(t, channel, "payment_failed", {"customer_id": c.cid}, ctx, money, reason)
    if e.chance(0.6):
        t += e.between(MIN, 20 * MIN)
        e.ev(t, channel, "payment_completed", {"customer_id": c.cid}, ctx, money)
        e.ev(t + e.between(4 * HOUR, 30 * HOUR), "logistics", "shipment_dispatched", _carrier(e, c), ctx)
    else:
        e.ev(t + e.between(10 * MIN, HOUR), channel, "order_cancelled", {"customer_id": c.cid}, ctx)


def _bot_runaround(e: _Engine, c: _Customer, t: int) -> None:
    """A chat bot with canned replies and no way to a person; a callback request; a hard survey."""
    base = {"order_id": c.last_order} if c.last_order and e.chance(0.3) else {}
    channel = e.pick(("chat", "wechat"))
    wait = e.between(0, 8)
    ctx, t = _contact(e, c, t, channel, base, wait=wait, handled="bot", transfers=0, resolved=False)
    if e.chance(0.5):
        e.ev(t + e.between(30 * SEC, 3 * MIN), channel, "callback_requested", _who(e, c, channel, True), ctx)
    if e.chance(0.4):
        _survey(e, c, t + e.between(5 * MIN, 3 * HOUR), ctx, happy=False, service=True)


def _win_back(e: _Engine, c: _Customer, t: int) -> None:
    """After a churn alert the CX team calls back, owns the case and makes it good: a compensation, often a
    proactive update on the order, and a happy survey. The customer's next weeks go well (the engine's
    `calm_until`), so the alert's outcome is a recovery."""
    case = {"case_id": e.new_id("WB")}
    call, t = _contact(e, c, t, "phone", case, wait=e.between(5, 40), handled="human", transfers=0, resolved=True)
    t += e.between(10 * MIN, 4 * HOUR)
    e.ev(t, "phone", "compensation_offered", {"customer_id": c.cid}, case,
         {"amount": float(e.between(30, 300)), "currency": "CNY"})  # fmt: skip
    if c.last_order and e.chance(0.6):
        _notify(e, c, t + e.between(HOUR, DAY), c.last_order, "order_status")
    if e.chance(0.7):
        _survey(e, c, t + e.between(HOUR, DAY), call, happy=True, service=True)


def _table(*weighted: tuple[Story, float]) -> tuple[list[Story], list[float]]:
    cum, total = [], 0.0
    for _, w in weighted:
        total += w
        cum.append(total)
    return [s for s, _ in weighted], cum


_GOOD: Final = _table((_browse, 0.42), (_purchase, 0.30), (_service, 0.14), (_store, 0.05),
                      (_promoter, 0.05), (_praise, 0.04))  # fmt: skip
_BAD: Final = _table((_service_hell, 0.30), (_late_delivery, 0.27), (_payment_trouble, 0.13),
                     (_bot_runaround, 0.15), (_rant, 0.07), (_detractor, 0.08))  # fmt: skip


# --- broken payloads -----------------------------------------------------------------------------
