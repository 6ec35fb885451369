"""djtrace's integrations: one package or module per library (django, http clients, ...).

Each is guarded by its imports (an absent library leaves it off), installed once, and wraps the
library so that an internal error falls back to the original behaviour and is reported through
djtrace.sdk.trace._report_internal_error instead of reaching the application.
"""
