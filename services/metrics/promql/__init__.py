"""PromQL over Vigil's metrics store: parsed by ``promql-parser``, evaluated with numpy."""
