"""Teams: a model belongs to a team, and the team's members may see and act on it.

A team's membership is a Django group of its own (`team:<slug>`), so that django-guardian can grant
object permissions on a team's models to the whole team at once.
"""

from django.contrib.auth.models import Group
from django.db import models

TEAM_GROUP_PREFIX = "team:"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def members(self):
        return self.group.user_set
