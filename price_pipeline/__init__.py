"""price_pipeline."""
