"""The simulator's machinery: its configuration, the customers, the clock and the engine that runs stories."""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from heapq import heappop, heappush
from typing import Any, Final

import phonenumbers

from schemas.records import RejectReason
from streams.domain.pii import normalize_phone

TOPIC: Final = "cx.touchpoints"
INVALID_REASONS: Final = tuple(r.value for r in RejectReason)
SEC: Final = 1000
MIN: Final = 60 * SEC
HOUR: Final = 60 * MIN
DAY: Final = 24 * HOUR

Event = dict[str, Any]
Payload = Event | bytes  # a touchpoint, or the bytes of a broken one
Outgoing = tuple[bytes | None, bytes, int]  # a Kafka message to send: key, value, touchpoints inside
# (stories, cumulative weights); a story is Callable[[_Engine, _Customer, int], None]
StoryTable = tuple[list[Callable[..., None]], list[float]]
Story = Callable[..., None]

# Arrival: most events reach Kafka within seconds; apps buffer offline, batch feeders run late.
_LATE_SHARE: Final = 0.005
_OFFLINE_SHARE: Final = 0.08
_DUPLICATE_SHARE: Final = 0.004
# Dissatisfying stories per customer over the simulated span: unhappy ones cross 3 ("事不过三").
_BAD_PER_UNHAPPY: Final = 4.0
_BAD_PER_HAPPY: Final = 0.25
# What unhappy customers do after every third bad story: leave silently, or get won back (issue 17).
_LEAVE_SHARE: Final = 0.2
_WIN_BACK_SHARE: Final = 0.35
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

    __slots__ = ("bad_stories", "browser", "calm_until", "cid", "cookie", "device", "emails", "gone", "last_order",
                 "phones", "unhappy", "wechat")  # fmt: skip

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
        # After about three bad stories (a churn alert), what happens next (issue 17): some leave without a
        # word (`gone`: no more stories), some are won back (a compensation and good stories only until
        # `calm_until`), the rest go on and relapse.
        self.bad_stories = 0
        self.gone = False
        self.calm_until = 0


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

    def __init__(self, config: SimulationConfig, good: StoryTable, bad: StoryTable, win_back: Story) -> None:
        self.config = config
        self.good, self.bad, self.win_back = good, bad, win_back
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
        c = self._person(group[int(rng.random() * len(group))])
        if c.gone and self.happy:  # a customer who left says nothing more: someone happy instead
            c = self._person(self.happy[int(rng.random() * len(self.happy))])
        bad = rng.random() < (self.p_bad_unhappy if c.unhappy else self.p_bad_happy) and t >= c.calm_until
        stories, cum = self.bad if bad else self.good
        stories[bisect_left(cum, rng.random() * cum[-1])](self, c, t)
        if bad and c.unhappy:
            c.bad_stories += 1
            if c.bad_stories % 3 == 0:  # about when a churn alert goes out
                fate = rng.random()
                if fate < _LEAVE_SHARE:
                    c.gone = True
                elif fate < _LEAVE_SHARE + _WIN_BACK_SHARE:
                    self.win_back(self, c, t + self.between(DAY, 3 * DAY))
                    c.calm_until = t + 45 * DAY

    def _person(self, index: int) -> _Customer:
        c = self.people.get(index)
        if c is None:
            c = self.people[index] = _Customer(index, index in self.unhappy_set, self.phones, self.run)
        return c

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
