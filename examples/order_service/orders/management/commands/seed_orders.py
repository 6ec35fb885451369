"""python manage.py seed_orders [--reset]

Sample data: an API user (staff, password from DEMO_PASSWORD), customers with e-mail addresses
and orders with items, some above the high-value threshold. Safe to run again: users are
created once; --reset replaces every order with the sample set.
"""

import os
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from orders.models import Order, OrderItem

CUSTOMERS = ["alice", "bob", "carol", "dave", "erin", "frank"]

# (customer, [(sku, product, quantity, unit price)], status)
ORDERS = [
    ("alice", [("KB-01", "Mechanical keyboard", 1, "89.00")], "pending"),
    ("bob", [("MS-02", "Wireless mouse", 2, "24.50")], "pending"),
    ("carol", [("LP-14", "Laptop 14-inch", 1, "1299.00"), ("BG-01", "Laptop bag", 1, "49.00")],
     "pending"),
    ("dave", [("MN-27", "Monitor 27-inch", 2, "329.00")], "pending"),
    ("erin", [("SV-01", "Rack server", 1, "12500.00")], "pending"),
    ("frank", [("CB-03", "USB-C cable", 3, "9.90")], "pending"),
    ("alice", [("HP-02", "Headphones", 1, "199.00")], "shipped"),
    ("bob", [("DK-01", "Docking station", 1, "1149.00")], "pending"),
    ("carol", [("WC-01", "Webcam", 1, "79.00")], "shipped"),
    ("dave", [("CH-01", "Office chair", 1, "459.00")], "pending"),
    ("erin", [("DS-01", "Standing desk", 1, "689.00")], "processing"),
    ("frank", [("PH-15", "Phone", 1, "999.00")], "pending"),
]


class Command(BaseCommand):
    help = "Create sample users, customers and orders"

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Replace every order")

    @transaction.atomic
    def handle(self, *args, **options):
        api_user, created = User.objects.get_or_create(
            username=os.getenv("DEMO_USERNAME", "demo"),
            defaults={"email": "demo@example.com", "is_staff": True},
        )
        if created:
            api_user.set_password(os.getenv("DEMO_PASSWORD", "demo-password"))
            api_user.save(update_fields=["password"])

        customers = {}
        for name in CUSTOMERS:
            customers[name], made = User.objects.get_or_create(
                username=name, defaults={"email": f"{name}@example.com"}
            )
            if made:  # customers never log in to the API
                customers[name].set_unusable_password()
                customers[name].save(update_fields=["password"])

        if options["reset"]:
            Order.objects.all().delete()
        elif Order.objects.exists():
            self.stdout.write("Orders already present (use --reset to replace them)")
            return

        for customer, items, status in ORDERS:
            order = Order.objects.create(
                user=customers[customer],
                product_name=items[0][1],
                amount=sum(Decimal(price) * qty for _, _, qty, price in items),
                status=status,
            )
            OrderItem.objects.bulk_create(
                OrderItem(order=order, product_sku=sku, quantity=qty, unit_price=price)
                for sku, _, qty, price in items
            )
        self.stdout.write(self.style.SUCCESS(
            f"{len(ORDERS)} orders for {len(CUSTOMERS)} customers; API user {api_user.username!r}"
        ))
