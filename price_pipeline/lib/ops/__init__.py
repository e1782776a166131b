"""Operations logic without Dagster imports: failure classification, alert delivery (webhook and
SMTP), run-tag policy (priorities, per-host limits) and the ops report computations."""
