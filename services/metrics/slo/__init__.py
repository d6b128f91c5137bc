"""Service level objectives computed from the stored samples: SLIs, error budgets, burn
rates and violations (``arithmetic``), over rolling and calendar windows (``periods``),
read exactly from the store (``reader``), answered over request/reply (``queries``) and
evaluated for burn-rate alerts (``burn``)."""
