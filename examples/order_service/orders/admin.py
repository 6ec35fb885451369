from django.contrib import admin

from .models import Order, OrderItem


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "product_name", "user", "amount", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("product_name", "user__username")
    list_select_related = ("user",)  # one query for the list page, not one per row
    inlines = [OrderItemInline]


@admin.register(OrderItem)
class OrderItemAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "product_sku", "quantity", "unit_price")
    list_select_related = ("order",)
