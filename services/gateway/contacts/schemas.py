"""Bodies of the contacts section: a contact is written exactly as in the YAML file."""

from __future__ import annotations

from pydantic import BaseModel

from services.gateway.common.config_items import public_model
from shared.pagingconfig import ContactConfig

ContactPublic: type[BaseModel] = public_model(ContactConfig)
