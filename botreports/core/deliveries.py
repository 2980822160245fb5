"""Sending a scheduled report to its recipients through the delivery channels.

Each attempt is recorded per recipient in the ``deliveries`` table; a retry
only sends to recipients that have not been sent the report yet, so nobody
receives it twice.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Dict, List, Optional, Tuple

from . import security
from .models import Refused

log = logging.getLogger("botreports.delivery")


def targets_of(schedule) -> List[Tuple[str, str]]:
    """``(channel, recipient)`` pairs of a schedule: its addresses by mail, its URLs by webhook."""
    return ([("email", address) for address in schedule.recipients or []]
            + [("webhook", url) for url in schedule.webhooks or []])


#: IPv6 prefixes whose last 32 bits are an IPv4 address a packet to them ends up at: the NAT64
#: well-known prefix (RFC 6052) and SIIT's IPv4-translated addresses (RFC 2765). A webhook to
#: 64:ff9b::7f00:1 reaches 127.0.0.1 through a NAT64 gateway, so it is judged as 127.0.0.1.
EMBEDDED_IPV4_LAST_32 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))
#: IPv6 prefixes refused whole: IPv4-compatible addresses (``::a.b.c.d``, deprecated by RFC 4291,
#: which some stacks still route to the IPv4 address), the NAT64 local-use prefix (RFC 8215),
#: which translates to whatever the local network chooses, and Teredo (RFC 4380), a tunnel to
#: an IPv4 client that no webhook receiver needs.
REFUSED_IPV6 = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"),
                ipaddress.IPv6Network("2001::/32"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address wraps (mapped, NAT64, SIIT, 6to4), else None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in network for network in EMBEDDED_IPV4_LAST_32):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to the 6to4 relay at AA.BB.CC.DD
        return ip.sixtofour
    return None


def is_public_address(address: str) -> bool:
    """Whether a webhook may reach the IP address ``address`` when private webhooks are not
    allowed: global unicast only. An IPv6 address that wraps an IPv4 address counts as that
    IPv4 address; the IPv6 forms in ``REFUSED_IPV6`` are refused whole. ``ValueError`` if ``address`` is not an IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        if any(ip in network for network in REFUSED_IPV6):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return ip.is_global and not ip.is_multicast


def private_host_problem(host: str) -> Optional[str]:
    """Why a webhook URL's host is refused as written: ``localhost`` or an IP literal that is not
    public. None for other names: only DNS can tell, and delivery checks what they resolve to."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # always loopback (RFC 6761)
        return f"{host} is a loopback host; webhooks may only reach public addresses"
    try:
        public = is_public_address(host)
    except ValueError:  # a name, not an address
        return None
    if public:
        return None
    return f"{host} is a private, loopback, link-local or reserved address; webhooks may only reach public addresses"


def signed_download_url(reports, report_id: str, ttl: Optional[int] = None) -> Tuple[str, int]:
    """``(url, expires)``: a link that downloads the report without credentials until ``expires``."""
    from .service import download_resource  # the facade module owns the signed resource name
    ttl = ttl or reports.settings.delivery_link_ttl
    expires, signature = security.signed_query(reports.secret, download_resource(report_id), ttl)
    base = (reports.settings.public_url or "http://localhost:8080").rstrip("/")
    return f"{base}/api/v1/reports/{report_id}/download?expires={expires}&signature={signature}", expires


def deliver_report(reports, report_id: str) -> Dict[str, int]:
    """Send a completed scheduled report to every recipient not yet served; retry failures later."""
    store, settings = reports.store, reports.settings
    report = store.get_report(report_id)
    if report is None or report.state != "completed" or not report.schedule_id:
        return {"sent": 0, "failed": 0}
    schedule = store.get_schedule(report.schedule_id)
    if schedule is None:
        return {"sent": 0, "failed": 0}
    artifact = reports.artifact_of(report)
    by_channel: Dict[str, List[Tuple[str, int]]] = {}
    for channel, recipient in targets_of(schedule):
        sent, tries = store.delivery_attempts(report_id, channel, recipient)
        if not sent and tries < settings.delivery_attempts:
            by_channel.setdefault(channel, []).append((recipient, tries + 1))
    counts = {"sent": 0, "failed": 0}
    retry = False
    for name, items in by_channel.items():
        channel = reports.delivery_channels.get(name)
        recipients = [recipient for recipient, _ in items]
        if channel is None:
            outcome = {r: f"no delivery channel named {name!r} is installed" for r in recipients}
        else:
            try:
                with artifact.local_path() as path:  # an object in S3 is copied here for the channel
                    outcome = channel.deliver(report, path, recipients, reports) or {}
            except Exception as exc:  # a broken channel fails its recipients, not the others
                log.exception("delivery channel %s failed", name)
                outcome = {r: f"{type(exc).__name__}: {exc}" for r in recipients}
        for recipient, attempt in items:
            problem = outcome.get(recipient)
            state = "sent" if problem is None else "refused" if isinstance(problem, Refused) else "failed"
            store.record_delivery(report_id, schedule.id, name, recipient, state, attempt, problem or "")
            counts["sent" if problem is None else "failed"] += 1
            if problem is not None:
                log.warning("delivery of %s to %s by %s %s (attempt %d): %s",
                            report_id, recipient, name, state, attempt, problem)
                retry = retry or (state == "failed" and channel is not None and attempt < settings.delivery_attempts)
    if retry:
        from .jobs import backoff
        attempt = max(a for items in by_channel.values() for _, a in items)
        reports.queue.enqueue_delivery(report_id, delay=backoff(settings, attempt))
    return counts
