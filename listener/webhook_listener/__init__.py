"""Webhook listener: verifies MLflow / Databricks model-promotion webhooks and hands them to CI exactly once."""
