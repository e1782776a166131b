"""ops domain: retry policies and failure classification, the failed-hospitals view, alert
sensors, the ops report and freshness policies."""
