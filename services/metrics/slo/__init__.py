"""Service level objectives computed from the stored samples: SLIs, error budgets, burn
rates and violations (``arithmetic``), over rolling and calendar windows (``periods``),
read exactly from the store (``reader``), answered over request/reply (``service``),
evaluated for the burn-rate alerts (``burn``), with the maintenance windows they may
leave out (``maintenance``); ``wiring`` adds them to the metrics service."""
