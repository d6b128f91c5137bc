"""Applies CONFIG's contact events: the file's set replaced as a whole, the API's one by one."""

from __future__ import annotations

from services.gateway.common.config_items import config_projection
from services.gateway.contacts.tables import contacts
from shared.configbook import CONTACTS

PROJECTION_NAME = "gateway-contacts"
PROJECTIONS = (config_projection(PROJECTION_NAME, CONTACTS, contacts),)
