"""A Prometheus-compatible store beside Vigil's own: every sample forwarded to it
(``forward``), and PromQL answered from it (``query``)."""
