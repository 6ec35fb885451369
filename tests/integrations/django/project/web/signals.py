import time

from django.dispatch import Signal, receiver

order_placed = Signal()


@receiver(order_placed)
def fast_receiver(sender, **kwargs):
    return "fast"


@receiver(order_placed)
def slow_receiver(sender, **kwargs):
    time.sleep(0.02)
    return "slow"
