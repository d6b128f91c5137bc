"""Who is on call: computed from the schedules read model with shared.oncall."""
