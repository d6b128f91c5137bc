"""Incidents: the read model of the INCIDENTS stream, and the commands sent to the owner."""
