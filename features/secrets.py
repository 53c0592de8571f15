"""Secrets never reach a log: one helper masks the password (and secret query values) of any URL.

Every URL cxpredict prints or logs (store URLs, the MLflow tracking URI, server settings) goes
through `mask_url`; SQLAlchemy's own `render_as_string(hide_password=True)` covers only its URLs,
and MLflow URIs (`postgresql://u:p@h/db`, `https://u:p@host`) are not all SQLAlchemy URLs.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry credentials in database and HTTP URLs.
SECRET_QUERY_KEYS = frozenset({"password", "pwd", "pass", "passwd", "token", "access_token", "secret",
                               "api_key", "apikey", "key", "sig", "signature", "sslpassword"})


def mask_url(url: str) -> str:
    """The URL with its password and secret query values replaced by `***`; other text unchanged.

    Args:
        url: any URL or plain path (a path has no password and is returned as given).
    Returns:
        The printable URL, e.g. `postgresql://scott:***@db:5432/cx`.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all (e.g. an unbalanced '[' in a path): show no part of it
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, has_password, _ = credentials.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls_in(text: str) -> str:
    """Free text (e.g. a database driver's error) with the password of every URL in it masked."""
    import re

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", lambda m: mask_url(m.group(0)), text)
