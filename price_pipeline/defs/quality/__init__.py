"""quality domain: table-wide checks over all hospitals and the quarantine view."""
