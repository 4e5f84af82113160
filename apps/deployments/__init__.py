"""Deployments: staging tests, canary rollouts with analysis, promotion and rollback of model versions."""
