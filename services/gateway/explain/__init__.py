"""Explain by rule and labels: what a rule would do with a series now, and its latest alert."""

from services.gateway.explain.router import router

__all__ = ["router"]
