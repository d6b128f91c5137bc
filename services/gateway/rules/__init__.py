"""Alert rules: the file's and the API's, read from CONFIG; changes sent to alerts, their owner.

The app includes ``router`` before the alerts section's, whose ``/alerts/{alert_id}``
would otherwise take ``/alerts/rules``; ``PROJECTIONS`` feed the read model.
"""

from services.gateway.rules.projector import PROJECTIONS
from services.gateway.rules.router import router

__all__ = ["PROJECTIONS", "router"]
