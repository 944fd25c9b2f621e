"""Seedable multi-channel traffic from the customer stories of docs/contract.md, for `cxj simulate` and `cxj demo`.

Each customer lives whole episodes, not independent random events: browsing sessions that end
in a login (stitching an anonymous cookie to the customer), purchases with proactive updates,
late parcels, failed payments, calls with long waits and transfers that turn into cases, repeat
contacts, complaints, compensation, surveys and social posts. A share of customers
(`unhappy_share`) lives three or more dissatisfying episodes, enough to cross into `high` churn
risk; the others mostly collect positive signals.

The stream is lazy and deterministic: the same config (seed and `now`) gives the same items in
the same order. Events come out roughly in arrival order (occurred_at plus a small ingestion
delay), with some late arrivals and exact duplicate re-sends mixed in, as real feeders produce.

>>> cfg = SimulationConfig(seed=1, customers=50, events=200, now=datetime(2026, 11, 20, tzinfo=UTC))
>>> sum(1 for item in generate_raw(cfg))
200
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from heapq import heappop, heappush
from typing import Any, Final

import orjson
import phonenumbers

from schemas.errors import StackError
from schemas.records import RejectReason
from schemas.settings import Settings
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from streams.domain.pii import normalize_phone

__all__ = [
    "INVALID_REASONS",
    "TOPIC",
    "Pacer",
    "ProduceStats",
    "SimulationConfig",
    "generate",
    "generate_raw",
    "messages",
    "produce",
]

TOPIC: Final = "cx.touchpoints"
INVALID_REASONS: Final = tuple(r.value for r in RejectReason)
SEC: Final = 1000
MIN: Final = 60 * SEC
HOUR: Final = 60 * MIN
DAY: Final = 24 * HOUR

Event = dict[str, Any]
Item = Event | bytes
Message = tuple[bytes | None, bytes, int]  # key, value, touchpoints inside

# Arrival: most events reach Kafka within seconds; apps buffer offline, batch feeders run late.
_LATE_SHARE: Final = 0.005
_OFFLINE_SHARE: Final = 0.08
_DUPLICATE_SHARE: Final = 0.004
# Dissatisfying stories per customer over the simulated span: unhappy ones cross 3 ("事不过三").
_BAD_PER_UNHAPPY: Final = 4.0
_BAD_PER_HAPPY: Final = 0.25
_EVENTS_PER_STORY: Final = 5.5  # about 5 for good stories, 9 for bad ones; for the allocation only
# Local UTC offset (minutes) of feeders per region; feeders elsewhere send UTC.
_OFFSETS: Final = {"CN": 480, "HK": 480, "TW": 480, "SG": 480, "JP": 540, "KR": 540, "IN": 330, "GB": 0}
# Relative traffic by local hour of day: quiet nights, a lunch bump, busy evenings.
_HOURLY: Final = (3, 2, 1, 1, 1, 1, 3, 6, 9, 11, 12, 12, 13, 12, 11, 11, 11, 11, 12, 14, 15, 15, 12, 7)
_CN_LEADS: Final = ("138", "139", "136", "186", "150", "158", "177", "199", "133", "189")
_GIVEN: Final = ("wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "jie", "xiu", "yan")
_FAMILY: Final = ("wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun")
_DOMAINS: Final = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "example.cn")
_CITIES: Final = ("Guangzhou", "Shenzhen", "Shanghai", "Hangzhou", "Wuhan", "Chengdu", "Beijing")
_QUERIES: Final = ("air fryer", "phone case", "running shoes", "tea set", "rice cooker", "headphones")
_SOURCES: Final = {
    "web": "web-frontend", "app": "mobile-app", "phone": "callcentre-pbx", "ivr": "callcentre-ivr",
    "chat": "livechat", "wechat": "wechat-service", "email": "email-gateway", "sms": "sms-gateway",
    "store": "store-pos", "logistics": "sf-express", "survey": "survey-platform",
    "social": "social-listening",
}  # fmt: skip
_UTC_SOURCES: Final = frozenset({"sf-express", "social-listening"})
_EPOCH: Final = date(1970, 1, 1)
# Pieces of timestamps, formatted once: string concatenation is 5x faster than format specs.
_HH_MM: Final = tuple(f"T{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SS: Final = tuple(f"{s:02d}" for s in range(60))
_MILLI: Final = tuple(f".{ms:03d}" for ms in range(1000))


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; equal configs give byte-identical traffic."""

    seed: int = 7
    customers: int = 2_000
    events: int = 20_000
    days: float = 30.0  # event times spread over the last `days` days before `now`
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    unhappy_share: float = 0.15  # customers who live bad service stories
    invalid_share: float = 0.01  # deliberately broken payloads, cycling through every rejection reason
    region: str = "CN"  # phones are this region's numbers, spelled several ways

    def __post_init__(self) -> None:
        if self.customers < 1 or self.events < 0 or self.days <= 0:
            raise ValueError("customers must be >= 1, events >= 0 and days > 0")
        if not (0 <= self.unhappy_share <= 1 and 0 <= self.invalid_share <= 1):
            raise ValueError("unhappy_share and invalid_share must lie in [0, 1]")
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")

    @property
    def invalid_count(self) -> int:
        return round(self.events * self.invalid_share)

    @property
    def valid_count(self) -> int:
        return self.events - self.invalid_count

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)


# --- people ------------------------------------------------------------------------------------


class _Phones:
    """National numbers of a region in several spellings, unique per customer index."""

    def __init__(self, region: str) -> None:
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            raise ValueError(f"no mobile numbers known for region {region!r}")
        nsn = phonenumbers.national_significant_number(example)
        self.width = min(8, len(nsn) - 2)
        leads = _CN_LEADS if region == "CN" else (nsn[: len(nsn) - self.width],)
        self.templates = [self._templates(lead, region) for lead in leads]

    def _templates(self, lead: str, region: str) -> list[tuple[str, list[int]]]:
        number = phonenumbers.parse(lead + "12345678"[: self.width], region)
        fmt = phonenumbers.PhoneNumberFormat
        e164 = phonenumbers.format_number(number, fmt.E164)
        national = phonenumbers.format_number(number, fmt.NATIONAL)
        spellings = [
            phonenumbers.format_number(number, fmt.INTERNATIONAL),
            national,
            "".join(ch for ch in national if ch.isdigit()),
            national.replace("(", "").replace(") ", "-").replace(" ", "-"),
            e164,
        ]
        out = []
        for text in dict.fromkeys(spellings):
            if normalize_phone(text, region) == e164:
                digits = [i for i, ch in enumerate(text) if ch.isdigit()]
                out.append((text, digits[-self.width :]))
        return out

    def spellings(self, index: int) -> tuple[str, ...]:
        suffix = f"{(index * 7919 + 1234567) % 10**self.width:0{self.width}d}"
        found = []
        for text, positions in self.templates[index % len(self.templates)]:
            chars = list(text)
            for pos, digit in zip(positions, suffix, strict=True):
                chars[pos] = digit
            found.append("".join(chars))
        return tuple(found)


class _Customer:
    """One person's identifiers (stable per index, whatever the seed) and story memory."""

    __slots__ = ("browser", "cid", "cookie", "device", "emails", "last_order", "phones", "unhappy", "wechat")

    def __init__(self, index: int, unhappy: bool, phones: _Phones, run: str) -> None:
        digest = blake2b(f"customer-{index}".encode(), digest_size=24).hexdigest()
        self.cid = f"C{index:07d}"
        self.unhappy = unhappy
        self.device = f"dev-{digest[:16]}"
        self.browser = f"br-{digest[16:32]}"
        self.wechat = f"o{digest[32:48]}wx"
        self.phones = phones.spellings(index)
        given, family = _GIVEN[index % len(_GIVEN)], _FAMILY[index // len(_GIVEN) % len(_FAMILY)]
        local, domain = f"{given}.{family}{index}", _DOMAINS[index % len(_DOMAINS)]
        self.emails = (
            f"{local}@{domain}",
            f"{local.title()}@{domain.upper()}",
            f"  {local}@{domain} ",
            f"{local.upper()}@{domain}\t",
        )
        self.cookie = f"anon-{run}-{index}"
        self.last_order = ""


class _Clock:
    """Story start times: uniform progress in [0, 1) mapped onto the window with a daily rhythm."""

    def __init__(self, config: SimulationConfig) -> None:
        self.now = config.now_ms
        self.start = self.now - int(config.days * DAY)
        self.offset = _OFFSETS.get(config.region, 0)
        self.bounds: list[int] = []
        self.cum: list[float] = [0.0]
        t = self.start
        while t < self.now:
            hour = (t + self.offset * MIN) // HOUR % 24
            end = min(t + HOUR, self.now)
            self.bounds.append(t)
            self.cum.append(self.cum[-1] + _HOURLY[hour] * (end - t) / HOUR)
            t = end
        self.bounds.append(self.now)
        sign = "-" if self.offset < 0 else "+"
        self.suffix = f"{sign}{abs(self.offset) // 60:02d}:{abs(self.offset) % 60:02d}"
        self._days: dict[int, str] = {}

    def at(self, progress: float) -> int:
        target = min(progress, 1.0) * self.cum[-1]
        i = min(max(1, bisect_left(self.cum, target)), len(self.cum) - 1)
        lo, hi = self.cum[i - 1], self.cum[i]
        frac = (target - lo) / (hi - lo) if hi > lo else 0.0
        t = self.bounds[i - 1] + int(frac * (self.bounds[i] - self.bounds[i - 1]))
        return min(max(t, self.start + 1), self.now)

    def stamp(self, ms: int, utc: bool) -> str:
        """RFC 3339 with milliseconds: local offset, or `Z` for feeders that send UTC."""
        day, msec = divmod(ms if utc else ms + self.offset * MIN, DAY)
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (_EPOCH + timedelta(days=day)).isoformat()
        minute, msec = divmod(msec, MIN)
        second, milli = divmod(msec, SEC)
        return text + _HH_MM[minute] + _SS[second] + _MILLI[milli] + ("Z" if utc else self.suffix)


# --- the engine ----------------------------------------------------------------------------------


class _Engine:
    """Runs stories in start-time order and releases their events in arrival order."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.run = blake2b(f"{config.seed}|{config.now_ms}".encode(), digest_size=4).hexdigest()
        self.clock = _Clock(config)
        self.now, self.stamp = self.clock.now, self.clock.stamp
        self.phones = _Phones(config.region)
        self.random = self.rng.random
        self.heap: list[tuple[int, int, Event]] = []
        self.n = self.kept = 0  # touchpoints made; queued including duplicates
        self.event_prefix = f"sim-{self.run}-"
        self.counters: dict[str, int] = {}
        self.people: dict[int, _Customer] = {}
        n_unhappy = round(config.customers * config.unhappy_share)
        self.unhappy_set = frozenset(self.rng.sample(range(config.customers), n_unhappy))
        self.unhappy = sorted(self.unhappy_set)
        self.happy = [i for i in range(config.customers) if i not in self.unhappy_set]
        self._allocate(config.valid_count / _EVENTS_PER_STORY)

    def _allocate(self, stories: float) -> None:
        """Unhappy customers get enough stories for ~4 bad ones per 90 days; happy ones rarely one."""
        nu, nh = len(self.unhappy), len(self.happy)
        windows = max(1.0, self.config.days / 90)
        bad_unhappy, bad_happy = _BAD_PER_UNHAPPY * windows, _BAD_PER_HAPPY * windows
        # Unhappy people are busier than most (they call back), and at most 85% of their stories go wrong.
        per_unhappy = max(1.5 * stories / (nu + nh), bad_unhappy / 0.85)
        to_unhappy = min(nu * per_unhappy, 0.7 * stories) if nh else stories
        self.unhappy_share = to_unhappy / stories if nu and stories else 0.0
        per_happy = (stories - to_unhappy) / nh if nh else 1.0
        self.p_bad_unhappy = min(0.85, bad_unhappy / max(to_unhappy / max(nu, 1), 1e-9))
        self.p_bad_happy = min(0.3, bad_happy / max(per_happy, 1e-9))

    def events(self) -> Iterator[Event]:
        target = self.config.valid_count
        heap, emitted = self.heap, 0
        start = self.clock.at(0.0)
        while emitted < target:
            # A story starting at `start` only adds events at or after it: release what is earlier.
            if self.kept < target and (not heap or heap[0][0] > start):
                self._story(start)
                start = self.clock.at(self.kept / target)
                continue
            yield heappop(heap)[2]
            emitted += 1

    def _story(self, t: int) -> None:
        rng = self.rng
        group = self.unhappy if (rng.random() < self.unhappy_share or not self.happy) else self.happy
        index = group[int(rng.random() * len(group))]
        c = self.people.get(index)
        if c is None:
            c = self.people[index] = _Customer(index, index in self.unhappy_set, self.phones, self.run)
        bad = rng.random() < (self.p_bad_unhappy if c.unhappy else self.p_bad_happy)
        stories, cum = _BAD if bad else _GOOD
        stories[bisect_left(cum, rng.random() * cum[-1])](self, c, t)

    # --- building touchpoints -----------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}-{self.run}-{n}"

    def ev(
        self, t: int, channel: str, event_type: str, identity: dict[str, str],
        context: dict[str, str] | None = None, metrics: dict[str, Any] | None = None,
        attributes: dict[str, str] | None = None, source: str | None = None,
    ) -> bool:  # fmt: skip
        """Queue one touchpoint; False (and nothing queued) when `t` lies after `now`."""
        if t > self.now:
            return False
        src = source or _SOURCES[channel]
        self.n += 1
        event: Event = {
            "event_id": self.event_prefix + str(self.n),
            "schema_version": 1,
            "occurred_at": self.stamp(t, src in _UTC_SOURCES),
            "source": src,
            "channel": channel,
            "event_type": event_type,
            "identity": dict(identity),
        }
        if context:
            event["context"] = dict(context)
        if metrics:
            event["metrics"] = metrics
        if attributes:
            event["attributes"] = attributes
        r = self.random()
        if r < _LATE_SHARE:
            arrival = t + HOUR + int(r / _LATE_SHARE * 11 * HOUR)
        elif channel == "app" and r < _OFFLINE_SHARE:
            arrival = t + MIN + int(r / _OFFLINE_SHARE * 30 * MIN)
        else:
            arrival = t + int(r * 3 * SEC)
        heappush(self.heap, (arrival, self.n, event))
        self.kept += 1
        if self.random() < _DUPLICATE_SHARE:  # the feeder re-sends it a little later
            heappush(self.heap, (arrival + SEC + int(self.random() * 300 * SEC), -self.n, event))
            self.kept += 1
        return True

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.random() * len(options))]

    def between(self, lo: int, hi: int) -> int:
        return lo + int(self.random() * (hi - lo))

    def chance(self, p: float) -> bool:
        return self.random() < p


# --- stories -------------------------------------------------------------------------------------
# Each story's first touchpoint happens at `t` itself; later ones move forward in time.

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


def _broken(reason: str, base: Event, n: int, rng: random.Random, config: SimulationConfig) -> bytes:
    """A payload that ingest rejects with exactly `reason`, built from a neighbouring valid event."""
    event = orjson.loads(orjson.dumps(base))  # a deep copy; PII kept, so dead letters show redaction
    event["event_id"] = f"{base['event_id']}-broken-{n}"
    variant = rng.random()
    if reason == "invalid_json":
        raw = orjson.dumps(event)
        if variant < 0.5:
            return raw[: len(raw) // 2]  # cut off mid-message
        return raw.replace(b'"', b"'") if variant < 0.8 else b"\xff\xfe" + raw
    if reason == "not_an_object":
        return orjson.dumps([event]) if variant < 0.6 else b'"touchpoint"' if variant < 0.8 else b"null"
    if reason == "missing_identity":
        placeholders = {"customer_id": "null", "anonymous_id": "", "device_id": "0"}
        event["identity"] = {} if variant < 0.5 else placeholders
    elif reason == "unknown_channel":
        event["channel"] = ("fax", "telegram", "WEB", "kiosk")[int(variant * 4)]
    elif reason == "invalid_field":
        bad: list[tuple[str, Any]] = [
            ("metrics", {"csat": 9}), ("metrics", {"nps": 11}), ("metrics", {"wait_seconds": -30}),
            ("metrics", {"amount": "199.00", "currency": "CNY"}), ("occurred_at", event["occurred_at"][:19]),
            ("event_type", "Order Placed"),
        ]  # fmt: skip
        name, value = bad[int(variant * len(bad))]
        event[name] = value
    elif reason == "future_timestamp":
        ahead = config.now_ms + HOUR + int(variant * 2 * DAY)
        event["occurred_at"] = datetime.fromtimestamp(ahead / 1000, UTC).isoformat(timespec="milliseconds")
    elif reason == "unsupported_schema_version":
        event["schema_version"] = 2 if variant < 0.7 else 0
    elif reason == "too_large":  # one touchpoint over 64 KiB (a feeder stuffing a transcript in)
        chunk = "lorem ipsum dolor sit amet " * 150
        event["attributes"] = {f"transcript_{i}": chunk for i in range(MAX_EVENT_BYTES // len(chunk) + 2)}
    return orjson.dumps(event)


# --- public API ----------------------------------------------------------------------------------


def generate(config: SimulationConfig) -> Iterator[Event]:
    """The valid v1 touchpoints (wire dicts), `config.valid_count` of them, lazily."""
    return _Engine(config).events()


def generate_raw(config: SimulationConfig) -> Iterator[Item]:
    """`config.events` items: `generate(config)`'s dicts with broken payload bytes mixed in.

    The broken ones sit at random places and cycle through every Contract 1 rejection reason.
    """
    valid = generate(config)
    rng = random.Random(config.seed * 1_000_003 + 17)
    reasons = list(INVALID_REASONS)
    rng.shuffle(reasons)
    total, broken = config.events, config.invalid_count
    made = 0
    last: Event | None = None
    for i in range(total):
        # selection sampling: exactly `broken` slots, each equally likely
        if (total - i) * rng.random() < broken - made:
            base = last or {"event_id": "sim-seed", "schema_version": 1, "source": "web-frontend",
                            "occurred_at": config.now.isoformat(), "channel": "web",
                            "event_type": "page_view", "identity": {"customer_id": "C0000000"}}  # fmt: skip
            yield _broken(reasons[made % len(reasons)], base, made, rng, config)
            made += 1
        else:
            last = next(valid)
            yield last


def messages(items: Iterable[Item], batch_size: int = 1) -> Iterator[Message]:
    """Kafka messages `(key, value, touchpoints)` for the items, as `produce` sends them.

    With `batch_size` 1 each dict is one message keyed by its customer_id (no key without one);
    above 1, dicts go in `{"events": [...]}` envelopes of up to `batch_size` (and under 8 MiB).
    Raw bytes are always sent alone, exactly as given.
    """
    if not 1 <= batch_size <= MAX_BATCH_EVENTS:
        limit = MAX_BATCH_EVENTS
        raise ValueError(f"batch_size must be between 1 and {limit} (Contract 1), got {batch_size}")
    return _singles(items) if batch_size == 1 else _batches(items, batch_size)


def _singles(items: Iterable[Item]) -> Iterator[Message]:
    for item in items:
        if isinstance(item, bytes):
            yield None, item, 1
            continue
        cid = item.get("identity", {}).get("customer_id")
        yield (cid.encode() if cid else None), orjson.dumps(item), 1


def _batches(items: Iterable[Item], batch_size: int) -> Iterator[Message]:
    parts: list[bytes] = []
    size = 0
    limit = MAX_BATCH_BYTES - 64
    for item in items:
        if isinstance(item, bytes):
            yield None, item, 1
            continue
        raw = orjson.dumps(item)
        if parts and size + len(raw) + 1 > limit:
            yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)
            parts, size = [], 0
        parts.append(raw)
        size += len(raw) + 1
        if len(parts) == batch_size:
            yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)
            parts, size = [], 0
    if parts:
        yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)


@dataclass(frozen=True)
class ProduceStats:
    """What `produce` sent, and how long it took (flush included)."""

    sent_events: int
    sent_messages: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.sent_events / self.seconds if self.seconds > 0 else 0.0


class Pacer:
    """Holds an average rate of events per second by sleeping when ahead (a token bucket)."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive events per second, got {rate}")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.restart()

    def restart(self) -> None:
        self.start = self.clock()
        self.sent = 0

    def took(self, events: int) -> None:
        """Count `events` as sent; sleep until the average rate allows the next one."""
        self.sent += events
        if self.rate is None:
            return
        ahead = self.start + self.sent / self.rate - self.clock()
        if ahead > 0.002:
            self.sleep(ahead)


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]touchpoints"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("send", total=total)
        yield lambda n: bar.advance(task, n)


def produce(
    settings: Settings, items: Iterable[Item], *, rate: float | None = None, batch_size: int = 1,
    total: int | None = None, progress: bool = False, topic: str = TOPIC,
) -> ProduceStats:  # fmt: skip
    """Send items to `topic` (dicts as JSON, bytes as they are); Kafka errors become StackError."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    stream = messages(items, batch_size)  # bad batch_size fails before connecting
    pacer = Pacer(rate)
    failures: list[BaseException] = []
    where = settings.kafka_bootstrap
    try:
        producer = KafkaProducer(
            bootstrap_servers=where, client_id="cxj-simulate", acks="all", enable_idempotence=False,
            linger_ms=20, batch_size=512 * 1024, max_request_size=MAX_BATCH_BYTES + 1024 * 1024,
            bootstrap_timeout_ms=15_000, **settings.kafka_client_options(),
        )  # fmt: skip
    except KafkaError as exc:
        raise StackError(f"cannot reach the Kafka broker at {where}: {exc}") from exc
    started = time.monotonic()
    pacer.restart()  # connecting took a while: pace from the first send
    sent = count = 0
    try:
        with _progress_bar(progress, total) as advance:
            for key, value, n in stream:
                producer.send(topic, value=value, key=key).add_errback(failures.append)
                sent, count = sent + n, count + 1
                advance(n)
                pacer.took(n)
                if failures:
                    break
        producer.flush()
    except KafkaError as exc:
        raise StackError(f"sending to {topic} at {where} failed: {exc}") from exc
    finally:
        producer.close(timeout=10)
    if failures:
        raise StackError(f"Kafka at {where} refused messages for {topic}: {failures[0]}")
    return ProduceStats(sent, count, time.monotonic() - started)
