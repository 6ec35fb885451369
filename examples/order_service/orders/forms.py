from django import forms

from .models import Order


class OrderForm(forms.ModelForm):
    """The HTML form behind OrderCreateView (the guide reads request.POST unvalidated)."""

    class Meta:
        model = Order
        fields = ["product_name", "amount"]
