"""``vigil silence add|list|expire``: silences through the gateway's API, as ``amtool``
makes them through Alertmanager's.

Talks HTTP to a running gateway (``--url``, default ``$VIGIL_URL`` or the local one) with
an API key (``$VIGIL_API_KEY``; a responder's key to add or expire, a viewer's to list).
An ``add`` carries an idempotency key, so the retry after a lost answer makes no second
silence.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.configtypes import parse_duration
from shared.matchers import MatcherError, parse_matcher

SILENCES_PATH = "/api/monitoring/silences"
DEFAULT_DURATION = "1h"
TIMEOUT_S = 15.0
ATTEMPTS = 3  # a lost answer or a 503 is retried with the same idempotency key
RETRY_PAUSE_S = 1.0


class CliError(Exception):
    """Told to the user in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str
    tls: ssl.SSLContext | None = None

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """One request; the parsed JSON answer (None when empty). Refusals raise CliError
        with the API's own words; a 503 or a lost connection is tried again."""
        data = None if body is None else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if data is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_PAUSE_S)
            request = urllib.request.Request(
                self.url.rstrip("/") + path, data=data, method=method, headers=sent
            )
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self.tls) as reply:
                    raw = reply.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                problem = _problem(exc)
                if exc.code in (502, 503):
                    last = problem
                    continue
                raise CliError(problem) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"cannot reach the gateway at {self.url}: {reason}"
        raise CliError(last)


def _problem(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{exc.code}: {detail or exc.reason}"


# --- add -----------------------------------------------------------------------------


def matcher_body(text: str) -> dict[str, Any]:
    """A matcher as Alertmanager's JSON has it; a bare word names the alert (as amtool)."""
    if not any(op in text for op in ("=", "!~")):
        text = f"alertname={text}"
    try:
        matcher = parse_matcher(text)
    except MatcherError as exc:
        raise CliError(f"{text}: {exc.message}", code=2) from None
    return {
        "name": matcher.name,
        "value": matcher.value,
        "isRegex": matcher.is_regex,
        "isEqual": matcher.is_equal,
    }


def parse_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{option}: {text!r} is not a time like 2026-05-01T22:00:00+02:00", 2
        ) from None
    return value if value.tzinfo is not None else value.astimezone()  # local time if no offset


def silence_body(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    if not args.matchers:
        raise CliError("give at least one matcher, like host=web-1", code=2)
    starts = parse_time(args.start, "--start") if args.start else now
    if args.end:
        ends = parse_time(args.end, "--end")
    else:
        try:
            seconds = parse_duration(args.duration or DEFAULT_DURATION)
        except ValueError as exc:
            raise CliError(f"--for: {exc}", code=2) from None
        ends = starts + timedelta(seconds=seconds)
    return {
        "matchers": [matcher_body(m) for m in args.matchers],
        "startsAt": starts.astimezone(UTC).isoformat(),
        "endsAt": ends.astimezone(UTC).isoformat(),
        "createdBy": args.author or getpass.getuser(),
        "comment": args.comment,
    }


def add(gateway: Gateway, body: dict[str, Any]) -> str:
    answer = gateway.call("POST", SILENCES_PATH, body, {"Idempotency-Key": str(uuid.uuid4())})
    return str(answer["silenceID"])


# --- list and expire ----------------------------------------------------------------------


def matcher_text(matcher: dict[str, Any]) -> str:
    op = (
        ("=~" if matcher.get("isEqual", True) else "!~")
        if matcher["isRegex"]
        else ("=" if matcher.get("isEqual", True) else "!=")
    )
    return f"{matcher['name']}{op}{json.dumps(matcher['value'])}"


def describe(silence: dict[str, Any]) -> str:
    matchers = ", ".join(matcher_text(m) for m in silence["matchers"])
    line = (
        f"{silence['id']}  {silence['status']['state']:<8} "
        f"{silence['startsAt']} → {silence['endsAt']}  by {silence['createdBy']}  {matchers}"
    )
    return f"{line}\n    {silence['comment']}" if silence["comment"] else line


def listing(gateway: Gateway, filters: list[str], expired: bool) -> list[str]:
    query = urllib.parse.urlencode([("filter", f) for f in filters])
    found = gateway.call("GET", SILENCES_PATH + (f"?{query}" if query else ""))
    shown = [s for s in found if expired or s["status"]["state"] != "expired"]
    return [describe(s) for s in shown] or ["no silences"]


def expire(gateway: Gateway, silence_id: str) -> str:
    quoted = urllib.parse.quote(silence_id, safe="")
    gateway.call("DELETE", f"{SILENCES_PATH}/{quoted}")
    return f"{silence_id}: expired"


# --- the commands -----------------------------------------------------------------------


def gateway_of(args: argparse.Namespace, env: dict[str, str]) -> Gateway:
    key = env.get("VIGIL_API_KEY", "").strip()
    if not key:
        raise CliError("set VIGIL_API_KEY to an API key (vigil key create)", code=2)
    url = args.url or env.get("VIGIL_URL") or "http://127.0.0.1:8080"
    tls = None
    if args.ca:
        tls = ssl.create_default_context(cafile=args.ca)
        tls.check_hostname = False  # the certificate, not the name, identifies the gateway
    return Gateway(url, key, tls)


def run(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    gateway = gateway_of(args, env)
    if args.silence_command == "add":
        return [add(gateway, silence_body(args, datetime.now(UTC)))]
    if args.silence_command == "list":
        return listing(gateway, args.filters, args.expired)
    return [expire(gateway, silence_id) for silence_id in args.ids]


def cmd_silence(args: argparse.Namespace) -> int:
    try:
        lines = run(args, dict(os.environ))
    except CliError as exc:
        print(f"vigil silence {args.silence_command}: {exc}", file=sys.stderr)
        return exc.code
    for line in lines:
        print(line)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = sub.add_parser(
        "silence", help="mute matching alerts for a while (needs VIGIL_API_KEY)"
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--url", default=None, help="the gateway (default $VIGIL_URL)")
    where.add_argument("--ca", default=None, help="PEM certificate an HTTPS gateway presents")
    actions = silence.add_subparsers(dest="silence_command", required=True)
    made = actions.add_parser(
        "add", parents=[where], help="silence alerts matching every matcher given"
    )
    made.add_argument(
        "matchers",
        nargs="*",
        metavar="MATCHER",
        help='host=web-1, severity=~"warn.*", team!=db; a bare word is the alert\'s name',
    )
    made.add_argument("--for", dest="duration", default=None, help="how long (default 1h)")
    made.add_argument("--end", default=None, help="or until when (ISO 8601)")
    made.add_argument("--start", default=None, help="from when (ISO 8601; default now)")
    made.add_argument("--comment", default="", help="why, for the people paged otherwise")
    made.add_argument("--author", default=None, help="who (default: your user name)")
    listed = actions.add_parser("list", parents=[where], help="silences in force or to come")
    listed.add_argument("filters", nargs="*", metavar="MATCHER", help="only those matching")
    listed.add_argument("--expired", action="store_true", help="ended ones too")
    ended = actions.add_parser("expire", parents=[where], help="end silences now")
    ended.add_argument("ids", nargs="+", metavar="ID")
    silence.set_defaults(func=cmd_silence)
