"""Customer ids kept out of the access log: paths like /v1/customers/C0001/score are logged as
/v1/customers/{id}/score when `access_log_ids` is false (ids are personal data in some deployments)."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
# A path segment after /v1/customers/ is a customer id; query values named customer_id are too.
_CUSTOMER_PATH = re.compile(r"(/v1/customers/)[^/?\s]+")
_CUSTOMER_QUERY = re.compile(r"([?&]customer_id=)[^&\s]*")


def without_customer_ids(path: str) -> str:
    """The request path with customer ids replaced by `{id}`."""
    return _CUSTOMER_QUERY.sub(r"\1{id}", _CUSTOMER_PATH.sub(r"\1{id}", path))


class CustomerIdFilter(logging.Filter):
    """Rewrites uvicorn's access records (args: client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            record.args = (*record.args[:2], without_customer_ids(record.args[2]), *record.args[3:])
        return True


def hide_access_log_ids() -> None:
    """Install the filter on uvicorn's access logger (once, however many apps are built)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, CustomerIdFilter) for f in logger.filters):
        logger.addFilter(CustomerIdFilter())
