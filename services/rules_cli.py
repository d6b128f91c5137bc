"""``vigil rules test RULES_FILE --samples SAMPLES_FILE``: unit tests for rules, as
``promtool test rules`` gives Prometheus users.

The samples (JSON lines, or a YAML/JSON list, of ``{name, labels, value, at}``; ``at`` in
seconds from the start or as an ISO time) go through the real evaluator with a clock set
to each sample's time, and every transition is printed: when, which rule, which labels,
fired/escalated/resolved, severity, value. ``--until`` lets time run on past the last
sample (absence deadlines fire on the way); ``--expect FILE`` compares the transitions
with a list of expected ones. Exit status: 0 as expected, 1 not as expected, 2 a bad
file (the message names the file, the entry and the field).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.alerts.replay import Change, RuleReplay
from shared.config import ConfigError, load_config
from shared.configtypes import format_duration, parse_duration
from shared.events import Sample
from shared.events.metrics import LabelMap

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_FILE = 0, 1, 2
RELATIVE_START = 1_700_000_000.0  # where "seconds from the start" begin on the replay's clock
VALUE_TOLERANCE = 1e-6


class BadFile(ValueError):
    pass


class SampleLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$")
    labels: LabelMap = Field(default_factory=dict)
    value: float = Field(allow_inf_nan=False)
    at: float | datetime = Field(description="Seconds from the start, or an ISO time")


class ExpectedChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float | datetime
    rule: str
    transition: str = Field(pattern=r"^(fired|escalated|resolved)$")
    labels: dict[str, str] | None = None
    severity: str | None = Field(default=None, pattern=r"^(warning|critical)$")
    value: float | None = None


# --- reading files ----------------------------------------------------------------------


def _entries(path: Path) -> list[tuple[str, Any]]:
    """Each entry with where it is (``line 4`` or ``[3]``): JSON lines or a YAML/JSON list."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadFile(f"{path}: cannot read: {exc.strerror}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if lines and all(line.lstrip().startswith("{") for _, line in lines):
        entries = []
        for number, line in lines:
            try:
                entries.append((f"{path}:{number}", orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise BadFile(f"{path}:{number}: not valid JSON: {exc}") from None
        return entries
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadFile(f"{path}: not valid YAML or JSON: {exc}") from None
    if isinstance(raw, dict) and len(raw) == 1:
        raw = next(iter(raw.values()))  # {samples: [...]} or {expect: [...]}
    if not isinstance(raw, list):
        raise BadFile(f"{path}: must be JSON lines or a list of entries")
    return [(f"{path}: [{index}]", entry) for index, entry in enumerate(raw)]


def _parsed(model: type[BaseModel], where: str, entry: Any) -> Any:
    if not isinstance(entry, dict):
        raise BadFile(f"{where}: must be a mapping, not {type(entry).__name__}")
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(entry)"
        message = error["msg"].removeprefix("Value error, ")
        raise BadFile(f"{where}: {field}: {message}") from None


@dataclass(frozen=True)
class Timeline:
    """How the files' times map onto the replay's clock: relative seconds or ISO times."""

    iso: bool

    def clock(self, at: float | datetime, where: str) -> float:
        if isinstance(at, datetime) != self.iso:
            form = "ISO times" if self.iso else "seconds from the start"
            raise BadFile(f"{where}: at: use one form of time throughout ({form})")
        if isinstance(at, datetime):
            return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
        return RELATIVE_START + at

    def show(self, clock: float) -> str:
        if self.iso:
            return datetime.fromtimestamp(clock, UTC).isoformat().replace("+00:00", "Z")
        return format_duration(round(clock - RELATIVE_START, 3))


def read_samples(path: Path) -> tuple[Timeline, list[tuple[float, Sample]]]:
    lines = [(where, _parsed(SampleLine, where, entry)) for where, entry in _entries(path)]
    if not lines:
        raise BadFile(f"{path}: no samples")
    timeline = Timeline(iso=isinstance(lines[0][1].at, datetime))
    timed = []
    for where, line in lines:
        at = timeline.clock(line.at, where)
        timed.append((at, Sample(name=line.name, value=line.value, labels=line.labels)))
    timed.sort(key=lambda pair: pair[0])
    return timeline, timed


def read_expected(path: Path, timeline: Timeline) -> list[tuple[float, ExpectedChange]]:
    found = []
    for where, entry in _entries(path):
        expected = _parsed(ExpectedChange, where, entry)
        found.append((timeline.clock(expected.at, where), expected))
    return found


def until_clock(text: str | None, timeline: Timeline, last: float) -> float:
    if text is None:
        return last
    if timeline.iso:
        try:
            return Timeline(True).clock(datetime.fromisoformat(text), "--until")
        except ValueError:
            raise BadFile(f"--until: {text!r} is not an ISO time like the samples'") from None
    try:
        return RELATIVE_START + parse_duration(text)
    except ValueError as exc:
        raise BadFile(f"--until: {exc}") from None


# --- running -----------------------------------------------------------------------------


async def replay(rules: Any, samples: Sequence[tuple[float, Sample]], until: float) -> list[Change]:
    """Batches of the samples that share a time, in time order, then time runs to ``until``."""
    run = RuleReplay(rules, start=samples[0][0] if samples else until)
    batch: list[Sample] = []
    batch_at = samples[0][0] if samples else until
    for at, sample in samples:
        if at != batch_at and batch:
            await run.batch(batch_at, batch)
            batch = []
        batch_at = at
        batch.append(sample)
    if batch:
        await run.batch(batch_at, batch)
    await run.advance(until)
    return run.changes()


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def table(changes: list[Change], timeline: Timeline) -> str:
    rows = [("TIME", "RULE", "LABELS", "TRANSITION", "SEVERITY", "VALUE")]
    for change in changes:
        kind = change.kind + (" (no data)" if change.reason == "absent" else "")
        rows.append(
            (
                timeline.show(change.at),
                change.rule,
                _labels(change.labels),
                kind,
                change.severity,
                _value(change.value),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def as_json(change: Change, timeline: Timeline) -> str:
    at: float | str = (
        timeline.show(change.at) if timeline.iso else round(change.at - RELATIVE_START, 3)
    )
    body = {
        "at": at,
        "rule": change.rule,
        "labels": change.labels,
        "transition": change.kind,
        "severity": change.severity,
        "value": change.value,
        "reason": change.reason,
    }
    if change.annotations:
        body["annotations"] = change.annotations
    return orjson.dumps(body).decode()


def _meets(change: Change, at: float, expected: ExpectedChange) -> bool:
    if (round(change.at, 3), change.rule, change.kind) != (
        round(at, 3),
        expected.rule,
        expected.transition,
    ):
        return False
    if expected.labels is not None and expected.labels != change.labels:
        return False
    if expected.severity is not None and expected.severity != change.severity:
        return False
    if expected.value is not None:
        got = change.value
        if got is None or not math.isclose(
            got, expected.value, rel_tol=VALUE_TOLERANCE, abs_tol=VALUE_TOLERANCE
        ):
            return False
    return True


def compare(
    changes: list[Change], expected: list[tuple[float, ExpectedChange]], timeline: Timeline
) -> list[str]:
    """What differs, one line each; empty when the transitions are exactly those expected."""
    problems = []
    for index in range(max(len(changes), len(expected))):
        got = changes[index] if index < len(changes) else None
        want = expected[index] if index < len(expected) else None
        if got is not None and want is not None and _meets(got, *want):
            continue
        wanted = (
            "nothing"
            if want is None
            else f"{want[1].transition} {want[1].rule} at {timeline.show(want[0])}"
        )
        seen = (
            "nothing"
            if got is None
            else f"{got.kind} {got.rule} {_labels(got.labels)} {got.severity} "
            f"value {_value(got.value)} at {timeline.show(got.at)}"
        )
        problems.append(f"transition {index + 1}: expected {wanted}, got {seen}")
    return problems


def cmd_test(args: argparse.Namespace) -> int:
    try:
        rules = load_config(args.rules_file).rules
        timeline, samples = read_samples(args.samples)
        until = until_clock(args.until, timeline, samples[-1][0])
        expected = read_expected(args.expect, timeline) if args.expect else None
    except (ConfigError, BadFile) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_FILE
    changes = asyncio.run(replay(rules, samples, until))
    if args.json:
        for change in changes:
            print(as_json(change, timeline))
    else:
        print(table(changes, timeline))
        print(f"\n{len(samples)} samples, {len(changes)} transitions")
    if expected is None:
        return EXIT_OK
    problems = compare(changes, expected, timeline)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"FAILED: {len(problems)} transitions not as expected", file=sys.stderr)
        return EXIT_UNEXPECTED
    print("ok: every transition as expected", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="work with alert rules off-line")
    actions = rules.add_subparsers(dest="rules_command", required=True)
    test = actions.add_parser("test", help="replay samples through rules and print the transitions")
    test.add_argument("rules_file", type=Path, metavar="RULES_FILE", help="a vigil.yaml")
    test.add_argument(
        "--samples",
        type=Path,
        required=True,
        metavar="SAMPLES_FILE",
        help="JSON lines or a YAML/JSON list of {name, labels, value, at}",
    )
    test.add_argument(
        "--until",
        default=None,
        help="let time run to this point (5m from the start, or an ISO time); "
        "default: the last sample",
    )
    test.add_argument(
        "--expect",
        type=Path,
        default=None,
        metavar="FILE",
        help="the expected transitions: a list of {at, rule, transition, labels, severity, value}",
    )
    test.add_argument("--json", action="store_true", help="one JSON object per transition")
    test.set_defaults(func=cmd_test)
