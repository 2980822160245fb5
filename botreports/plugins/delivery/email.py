"""The ``email`` delivery channel: one message per recipient over SMTP, with
the report attached up to ``max_attachment_bytes`` and a signed link above it.

Server settings come from ``BOTREPORTS_SMTP_*`` (host, port, user, password,
from, security ``none``/``starttls``/``ssl``, timeout).
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ... import hookimpl
from ...core.deliveries import signed_download_url
from ...core.models import DeliveryChannel


def compose(report, path, recipient: str, reports, schedule) -> EmailMessage:
    """The message for one recipient: the schedule's subject and text, the file or a link to it."""
    settings = reports.settings
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = recipient
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or "localhost")
    message["Subject"] = (schedule.subject if schedule and schedule.subject else f"Report: {report.title}")
    text = (schedule.message if schedule and schedule.message else
            f"Your scheduled report \"{report.title}\" is ready.")
    size = path.stat().st_size
    if size <= settings.max_attachment_bytes:
        message.set_content(f"{text}\n\nThe report is attached ({report.filename}).\n")
        maintype, _, subtype = (report.media_type or "application/octet-stream").partition("/")
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype or "octet-stream",
                               filename=report.filename or path.name)
    else:
        url, expires = signed_download_url(reports, report.id)
        limit_mb = settings.max_attachment_bytes / 1_048_576
        message.set_content(
            f"{text}\n\nThe report ({size / 1_048_576:.1f} MB) is larger than the {limit_mb:g} MB that can be "
            f"attached. Download it here (the link works until "
            f"{formatdate(expires, localtime=False)}):\n\n{url}\n")
    return message


def _connect(settings):
    context = ssl.create_default_context()
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout,
                                  context=context)
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
        if settings.smtp_security == "starttls":
            client.starttls(context=context)
    if settings.smtp_user:
        client.login(settings.smtp_user, settings.smtp_password or "")
    return client


def deliver(report, artifact_path, recipients, reports):
    """Send to each recipient; returns ``{recipient: problem}`` for the ones that failed."""
    schedule = reports.store.get_schedule(report.schedule_id) if report.schedule_id else None
    problems = {}
    try:
        client = _connect(reports.settings)
    except (OSError, smtplib.SMTPException) as exc:
        return {recipient: f"could not reach the mail server: {exc}" for recipient in recipients}
    try:
        for index, recipient in enumerate(recipients):
            try:
                refused = client.send_message(compose(report, artifact_path, recipient, reports, schedule),
                                              to_addrs=[recipient])
                if refused:
                    problems[recipient] = f"refused by the mail server: {refused[recipient]}"
            except smtplib.SMTPServerDisconnected as exc:
                problems[recipient] = f"the mail server disconnected: {exc}"
                try:
                    client = _reconnect(reports.settings, client)
                except (OSError, smtplib.SMTPException) as again:
                    # Who was sent stays sent; the rest fail and are retried later.
                    for rest in recipients[index + 1:]:
                        problems[rest] = f"could not reach the mail server again: {again}"
                    break
            except (OSError, smtplib.SMTPException) as exc:
                problems[recipient] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            pass
    return problems


def _reconnect(settings, client):
    try:
        client.close()
    except OSError:
        pass
    return _connect(settings)


@hookimpl
def register_delivery_channels():
    return DeliveryChannel("email", deliver, "E-mail over SMTP: the file attached, or a signed link when large")
