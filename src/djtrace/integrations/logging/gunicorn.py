"""The trace id in Gunicorn's access log.

Gunicorn writes its access log after the response has been sent, when the request's span has
ended and is no longer current, so the log record factory has nothing to read there. The
request's ids travel instead with the request itself:

- the request integration stores them in the WSGI environ
  (`djtrace.integrations.logging.remember_request(environ, span)`, keys
  `djtrace.trace_id` / `djtrace.span_id`), which Gunicorn's `%({djtrace.trace_id}e)s` atom
  prints with no further set-up;
- or the response carries a W3C `traceresponse` header, printed with `%({traceresponse}o)s`.

With `logger_class = "djtrace.integrations.logging.gunicorn.Logger"`, the atoms `%(trace_id)s`,
`%(span_id)s` and `%(trace_sampled)s` are available too, from either source ("-" when the
request was not traced). A gunicorn.conf.py::

    logger_class = "djtrace.integrations.logging.gunicorn.Logger"
    access_log_format = djtrace.integrations.logging.gunicorn.ACCESS_LOG_FORMAT
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger as _GunicornLogger

from djtrace.integrations.logging import (
    ENVIRON_SAMPLED,
    ENVIRON_SPAN_ID,
    ENVIRON_TRACE_ID,
    remember_request,
)

__all__ = ["ACCESS_LOG_FORMAT", "ENVIRON_TRACE_ID", "ENVIRON_SPAN_ID", "Logger", "remember"]

#: The same as djtrace.integrations.logging.remember_request (which needs no Gunicorn).
remember = remember_request

#: Gunicorn's default access log format followed by the trace id (needs Logger below).
ACCESS_LOG_FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
                     'trace_id=%(trace_id)s')


def _from_traceresponse(value: str) -> tuple | None:
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        sampled = bool(int(parts[3], 16) & 1)
    except ValueError:
        return None
    return parts[1], parts[2], "true" if sampled else "false"


def request_ids(environ: Any, response_headers: Any) -> tuple:
    """(trace id, span id, sampled) of a finished request, "-" for each when unknown."""
    trace_id = environ.get(ENVIRON_TRACE_ID)
    if trace_id:
        return trace_id, environ.get(ENVIRON_SPAN_ID, "-"), environ.get(ENVIRON_SAMPLED, "-")
    for name, value in response_headers or ():
        if name.lower() == "traceresponse":
            found = _from_traceresponse(value)
            if found:
                return found
    return "-", "-", "-"


class Logger(_GunicornLogger):
    """Gunicorn's logger with the atoms trace_id, span_id and trace_sampled."""

    def atoms(self, resp, req, environ, request_time):  # noqa: D102 - Gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        headers = resp.headers
        if hasattr(headers, "items"):
            headers = headers.items()
        atoms["trace_id"], atoms["span_id"], atoms["trace_sampled"] = request_ids(
            environ, headers)
        return atoms
