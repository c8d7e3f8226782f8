"""The model's alert rules, written once and rendered both for Azure Monitor and as a Prometheus rules file."""
