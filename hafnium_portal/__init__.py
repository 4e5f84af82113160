"""Hafnium Portal: governance of Hafnium's machine-learning models."""

from .celery import app as celery_app

__all__ = ("celery_app",)
