"""Signals of governance: the seam where rollouts (apps/deployments) take over a completed promotion."""

from django.dispatch import Signal

# A promotion request was completed (stage moved, MLflow alias set): kwargs `request`.
promotion_completed = Signal()
