from rest_framework import serializers

from .models import Order, OrderItem
from .services import OrderService


class OrderItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderItem
        fields = ["id", "product_sku", "quantity", "unit_price"]


class OrderSerializer(serializers.ModelSerializer):
    user = serializers.ReadOnlyField(source="user.username")
    items = OrderItemSerializer(many=True, required=False)
    amount = serializers.DecimalField(max_digits=10, decimal_places=2, required=False)
    # Staff may place an order for a customer, named by e-mail address (never echoed back).
    customer_email = serializers.EmailField(write_only=True, required=False)

    class Meta:
        model = Order
        fields = ["id", "user", "product_name", "amount", "status", "created_at", "updated_at",
                  "items", "customer_email"]
        read_only_fields = ["status", "created_at", "updated_at"]

    def validate(self, attrs):
        if not attrs.get("items") and attrs.get("amount") is None:
            raise serializers.ValidationError("Give an amount or at least one item.")
        return attrs

    def create(self, validated_data):
        items = validated_data.pop("items", None)
        if not items:
            return super().create(validated_data)
        # The amount of an order with items is the sum of its lines.
        return OrderService.create_order_with_items(
            validated_data["user"],
            [
                {"product": validated_data["product_name"], "sku": item["product_sku"],
                 "quantity": item["quantity"], "price": item["unit_price"]}
                for item in items
            ],
            product_name=validated_data["product_name"],
        )

