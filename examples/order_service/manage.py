#!/usr/bin/env python
"""Django's command-line utility for the order service."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "order_service.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
