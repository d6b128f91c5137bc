"""SLA figures and monthly reports; the metrics service computes, the gateway renders."""
