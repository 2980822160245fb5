"""The ``webhook`` delivery channel: POST a JSON notice with a signed download
link to each URL of a schedule.

Webhook URLs are user input, so requests to private, loopback, link-local and
other non-public addresses are refused (``BOTREPORTS_WEBHOOK_ALLOW_PRIVATE``
allows them). The host name is resolved once, every address it resolves to is
checked, and the connection goes to a checked address, so a DNS answer that
changes between the check and the request cannot reach an internal service.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import List
from urllib.parse import urlsplit

from ... import hookimpl
from ...core.deliveries import is_public_address, signed_download_url
from ...core.models import DeliveryChannel, Refused
from ...core.views import status_view

TIMEOUT = 15


class RefusedAddress(ValueError):
    """The webhook's host resolves to an address webhooks may not reach."""


def public_addresses(host: str, port: int, allow_private: bool) -> List[str]:
    """Every address ``host`` resolves to, all checked; ``RefusedAddress`` if any is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:  # DNS may answer later: an ordinary, retried failure
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise RefusedAddress(f"{host} resolves to {address}, a private, loopback, link-local or reserved "
                                     "address; webhooks may only reach public addresses")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, address, **kwargs):
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, address, **kwargs):
        super().__init__(host, context=ssl.create_default_context(), **kwargs)
        self._address = address

    def connect(self):
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # Certificate and SNI are checked against the URL's host name, not the pinned address.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post_json(url: str, payload: dict, allow_private: bool, timeout: float = TIMEOUT) -> int:
    """POST ``payload`` to ``url`` through a checked address; returns the status (2xx) or raises."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = public_addresses(parts.hostname, port, allow_private)[0]
    kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = kind(parts.hostname, address, port=port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload).encode("utf-8")
    try:
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "botreports-webhook"})
        response = connection.getresponse()
        response.read(65536)
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise OSError(f"the webhook answered HTTP {response.status}")
    return response.status


def notice(report, reports) -> dict:
    """The JSON a webhook receives: the report's status, file facts and a signed link."""
    url, expires = signed_download_url(reports, report.id)
    return {"event": "report.completed", **status_view(report), "schedule_id": report.schedule_id,
            "type": report.type, "title": report.title, "format": report.format, "file_name": report.filename,
            "file_size": report.artifact_size, "media_type": report.media_type, "download_url": url,
            "download_expires": expires}


def deliver(report, artifact_path, recipients, reports):
    """POST the notice to each URL; returns ``{url: problem}`` for those that failed."""
    payload = notice(report, reports)
    problems = {}
    for url in recipients:
        try:
            post_json(url, payload, reports.settings.webhook_allow_private)
        except RefusedAddress as exc:  # retrying will not make a private address public
            problems[url] = Refused(str(exc))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            problems[url] = str(exc) or type(exc).__name__
    return problems


@hookimpl
def register_delivery_channels():
    return DeliveryChannel("webhook", deliver, "POST JSON with a signed download link to an http(s) URL")
