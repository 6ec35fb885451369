"""The guide's shop: customers, their orders and the orders' items."""

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()

    class Meta:
        db_table = "customers"


class CustomerProfile(models.Model):
    """One-to-one with Customer: `customer.profile` is a reverse one-to-one lazy load."""

    customer = models.OneToOneField(Customer, related_name="profile", on_delete=models.CASCADE)
    loyalty_tier = models.CharField(max_length=20, default="bronze")

    class Meta:
        db_table = "customer_profiles"


class Tag(models.Model):
    label = models.CharField(max_length=40)

    class Meta:
        db_table = "tags"


class Order(models.Model):
    customer = models.ForeignKey(Customer, related_name="orders", on_delete=models.CASCADE)
    reference = models.CharField(max_length=40)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    tags = models.ManyToManyField(Tag, related_name="orders", blank=True)

    class Meta:
        db_table = "orders"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, related_name="items", on_delete=models.CASCADE)
    sku = models.CharField(max_length=40)
    quantity = models.IntegerField(default=1)

    class Meta:
        db_table = "order_items"
