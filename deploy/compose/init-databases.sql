-- The registry database beside the Dagster instance's (POSTGRES_DB creates `dagster`).
CREATE DATABASE price_pipeline OWNER dagster;
