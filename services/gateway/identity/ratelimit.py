"""Request limits: a token bucket per identity, and login throttling per account and per
client address (free attempts, then a doubling wait, then 429 with Retry-After).

In memory, per gateway process: limits that hold across restarts would need a write per
request, which is what they exist to prevent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shared.errors import Overloaded

MAX_TRACKED = 10_000  # entries per table before the idle ones are dropped


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class IdentityLimits:
    """One bucket per identity (user, or key) and kind of traffic (API, sample ingest)."""

    def __init__(self, rate_per_s: float, burst: int, ingest_rate_per_s: float):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.ingest_rate_per_s = ingest_rate_per_s
        self.buckets: dict[tuple[str, bool], TokenBucket] = {}

    def take(self, who: str, ingest: bool) -> None:
        now = time.monotonic()
        bucket = self.buckets.get((who, ingest))
        if bucket is None:
            if len(self.buckets) >= MAX_TRACKED:
                self.buckets.clear()  # identities are few; this only bounds a flood of them
            rate = self.ingest_rate_per_s if ingest else self.rate_per_s
            burst = max(self.burst, rate) if ingest else self.burst
            bucket = self.buckets[(who, ingest)] = TokenBucket(rate, burst, at=now)
        wait = bucket.take(now)
        if wait > 0:
            raise Overloaded(
                f"{who} sends more than {bucket.rate_per_s:g} requests per second; "
                f"retry in {wait:.2f} s",
                retry_after_s=wait,
            )


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class FailureThrottle:
    """After ``free`` failures in a row, each attempt must wait 2^(n - free) seconds
    (up to ``max_wait_s``) after the last failure; a quiet ``forget_after_s`` starts over."""

    free: int
    max_wait_s: float = 900.0
    forget_after_s: float = 900.0
    entries: dict[str, Failures] = field(default_factory=dict)

    def wait_s(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        if entry is None:
            return 0.0
        if now - entry.last > self.forget_after_s:
            del self.entries[key]
            return 0.0
        if entry.count < self.free:
            return 0.0
        wait = min(2.0 ** (entry.count - self.free), self.max_wait_s)
        return max(0.0, entry.last + wait - now)

    def failed(self, key: str, now: float) -> None:
        if len(self.entries) >= MAX_TRACKED:
            for stale in [k for k, e in self.entries.items() if now - e.last > 60.0]:
                del self.entries[stale]
            if len(self.entries) >= MAX_TRACKED:
                self.entries.pop(next(iter(self.entries)))
        entry = self.entries.setdefault(key, Failures())
        entry.count += 1
        entry.last = now

    def succeeded(self, key: str) -> None:
        self.entries.pop(key, None)


class LoginThrottle:
    """Guessing one account's password, or many accounts' from one address, slows down."""

    def __init__(self, account_free: int = 5, address_free: int = 20):
        self.accounts = FailureThrottle(account_free)
        self.addresses = FailureThrottle(address_free)

    def check(self, account: str, address: str) -> None:
        now = time.monotonic()
        wait = max(self.accounts.wait_s(account.lower(), now), self.addresses.wait_s(address, now))
        if wait > 0:
            raise Overloaded(f"too many failed logins; retry in {wait:.0f} s", retry_after_s=wait)

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        self.accounts.failed(account.lower(), now)
        self.addresses.failed(address, now)

    def succeeded(self, account: str, address: str) -> None:
        self.accounts.succeeded(account.lower())
        self.addresses.succeeded(address)
