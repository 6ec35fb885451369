"""The Django 5.2 + DRF project the Django integration's tests run against: `web` (views,
templates, middleware, commands for the request/layer tests) and `shop` (the ORM models the
database tests use)."""
