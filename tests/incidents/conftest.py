"""Helpers for the incidents tests: poll a condition instead of sleeping."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")
