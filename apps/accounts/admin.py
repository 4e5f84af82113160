from django.contrib import admin
from django.contrib.auth.models import Group

from .models import TEAM_GROUP_PREFIX, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Members are managed on the user page: membership is the group `team:<slug>`."""

    list_display = ["name", "slug", "group", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["group"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.group = Group.objects.create(name=f"{TEAM_GROUP_PREFIX}{obj.slug}")
        super().save_model(request, obj, form, change)
