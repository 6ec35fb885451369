from django.conf import settings
from django.db import models


class Note(models.Model):
    """What the DRF tests create and list."""

    title = models.CharField(max_length=100)
    body = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL)
