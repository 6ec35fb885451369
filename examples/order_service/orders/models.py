"""Orders and their line items, as the guide defines them. Every query is traced by djtrace
(one CLIENT span per statement, named like "SELECT orders", with the obfuscated SQL)."""

from django.contrib.auth.models import User
from django.db import models


class Order(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="orders")
    product_name = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=50, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "orders"
        indexes = [
            models.Index(fields=["user", "status"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self):
        return f"Order {self.id} - {self.product_name}"

    @classmethod
    def get_user_orders(cls, user_id):
        """A user's orders, with the user joined in (one SELECT with a JOIN)."""
        return cls.objects.filter(user_id=user_id).select_related("user")

    @classmethod
    def get_recent_orders(cls, limit=10):
        """The latest orders (a SELECT with ORDER BY and LIMIT)."""
        return cls.objects.order_by("-created_at")[:limit]


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product_sku = models.CharField(max_length=100)
    quantity = models.IntegerField(default=1)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        db_table = "order_items"

    def __str__(self):
        return f"{self.quantity} x {self.product_sku}"

    @property
    def line_total(self):
        return self.quantity * self.unit_price
