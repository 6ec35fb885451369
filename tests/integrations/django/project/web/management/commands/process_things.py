from django.core.cache import cache
from django.core.management.base import BaseCommand
from django.db import connection
from django.template.loader import render_to_string


class Command(BaseCommand):
    help = "Does a bit of everything, for the command span tests."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*")
        parser.add_argument("--limit", type=int, default=10)
        parser.add_argument("--api-token", default="")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        names = options["names"]
        cache.set("command:last", options["limit"])
        cache.get("command:last")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        render_to_string("web/page.html", {"title": "command"})
        self.stdout.write(f"processed {len(names)}")
