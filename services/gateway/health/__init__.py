"""Health: liveness, readiness, the system's health and its components, the watchdog."""
