from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--crash", action="store_true")

    def handle(self, *args, **options):
        if options["crash"]:
            raise RuntimeError("command crashed")
        raise CommandError("nothing to do", returncode=3)
