"""Escalation: paging people through a policy's steps until someone answers.

How the notifier uses it (the whole interface)::

    engine = EscalationEngine(lambda: runtime.bus, db_engine, directory, clock=utcnow)
    runtime.on_start(engine.start)      # creates its tables, catches up, re-arms timers
    runtime.on_stop(engine.stop)
    runtime.background(engine.run_timers)  # fires due steps (within 1 s of due_at)
    await engine.on_alert_event(event, policy)  # every alert event, with the policy its
                                                # route picked or None
    await engine.apply(event, seq)      # optional: every PAGING event from a consumer
    await engine.rebuild()              # `vigil rebuild`: the table from the stream

``directory`` answers ``policies()``, ``schedules()`` and ``contacts()``, mappings by
name (directory.EscalationDirectory; the notifier's PagingDirectory fits); a step reads
them when it fires.

- AlertFired / AlertEscalated with a policy start escalation (alert, policy, generation
  0) unless it exists or the alert was acknowledged; the first step is due at the alert
  event's time + its delay.
- AlertAcknowledged stops the alert's running escalations (EscalationStopped
  "acknowledged"); with the policy's ``ack_timeout`` it starts generation + 1, its first
  step due at acknowledgement time + ack_timeout (+ the first step's delay).
- AlertResolved stops everything of that alert ("resolved"), pending re-escalations too,
  and a later trigger for that alert starts nothing.
- An alert event with ``suppressed_by`` (silenced, inhibited, in maintenance, flapping)
  starts nothing and stops what runs for the alert ("suppressed"); an acknowledgement
  of a muted alert starts no ack-timeout generation.
- AlertSuppressionChanged to no reasons (or AlertSettled) while the alert fires starts
  a new generation at once, as AlertFired would; while it is acknowledged, one due at
  that time + ``ack_timeout``. Each such event starts at most one (its id is the cause).
- A step that fires publishes EscalationStepFired with its targets resolved at that
  moment (channel -> via "channel"; user -> one target per contact method, via
  "user:<name>"; schedule -> whoever is on call, via "schedule:<name>"); what cannot be
  resolved goes to ``unresolved`` with the reason, and a step that reaches nobody is
  still recorded. Then the next step is scheduled, or after the last step of the last
  round EscalationStopped "exhausted".

Every state change is an event on PAGING with an id derived from (alert, policy,
generation, round, step, kind); the SQL table is their projection (store.py).
"""

from services.notifier.escalation.directory import EscalationDirectory
from services.notifier.escalation.engine import EscalationEngine, escalation_id, event_id

__all__ = ["EscalationDirectory", "EscalationEngine", "escalation_id", "event_id"]
