"""Contacts: list and read for viewers; create, change and delete for admins, through the
notifier."""

from __future__ import annotations

from services.gateway.common.config_items import config_router
from services.gateway.contacts.projector import PROJECTION_NAME
from services.gateway.contacts.schemas import ContactPublic
from services.gateway.contacts.tables import contacts
from shared import commands
from shared.pagingconfig import ContactConfig

router = config_router(
    path="contacts",
    noun="contact",
    model=ContactConfig,
    public=ContactPublic,
    table=contacts,
    projection=PROJECTION_NAME,
    create=(
        commands.CREATE_CONTACT,
        lambda item, by: commands.CreateContact(contact=item, by=by),
    ),
    update=(
        commands.UPDATE_CONTACT,
        lambda name, item, by: commands.UpdateContact(name=name, contact=item, by=by),
    ),
    remove=(commands.DELETE_CONTACT, lambda name, by: commands.DeleteContact(name=name, by=by)),
    said={
        "list": "How each person is reached when paged, by user name: the configuration "
        "file's and those set here.",
        "create": "Used by the next page; 409 when the user has contact methods already "
        "(from the file or the API).",
        "update": "Replaces the user's contact methods; 409 for a file-managed contact.",
        "delete": "The user is no longer reached by pages that name them; 409 for a "
        "file-managed contact.",
    },
)
