"""Ledgers: every notification sent or failed, and every dead-lettered message."""
