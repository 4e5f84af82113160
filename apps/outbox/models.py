"""The outbox every app writes its mails and webhook calls to: one abstract row, one delivery mechanism.

Why abstract, not one shared table: each app keeps a table that means something to its readers
(governance's Notification says who was told what about a promotion request, the alerts' AlertNotification
what on-call heard about an alert, with a foreign key to it), while claiming, leasing, signing,
retrying and sweeping are written once, in `apps/outbox/delivery.py`, and run over any concrete
subclass. Audit and the pages read the app's own table; the mechanism never needs to know the app.
"""

import uuid

from django.db import models


class OutboxMessage(models.Model):
    """A mail or webhook call, written in the transaction of the event it tells about.

    Delivered by a task after the commit; one left undelivered (Redis down, mail server down) is found
    again by a periodic sweep, so an event is never silently lost. A delivery claims the row first
    (`claimed_until`, a lease) and sends with `key` as its idempotency key, so a receiver can drop the
    copy a crash between sending and recording may cause; `next_attempt_at` keeps the sweep from
    enqueueing it again while a delivery is scheduled or a retry is waiting.

    A concrete subclass names the Celery task that delivers one of its rows (`deliver_task`, called
    with the row's id) and the settings holding its webhook's URL and secret (`webhook_settings`).
    """

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=50)
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="idempotency key")
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)

    deliver_task: str = ""
    webhook_settings: tuple[str, str] = ("", "")  # names of the settings: URL, secret

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} #{self.pk} ({'sent' if self.sent_at else 'pending'})"
