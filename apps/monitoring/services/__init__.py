"""Monitoring's actions, one module per concern (drift_*: drift runs, references, responses, retraining)."""
