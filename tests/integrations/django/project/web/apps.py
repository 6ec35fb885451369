from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "project.web"
    label = "web"

    def ready(self):
        from project.web import signals  # noqa: F401 - connects the receivers
