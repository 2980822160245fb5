"""Configuration: defaults, overridden by ``BOTREPORTS_*`` environment variables,
overridden by keyword arguments to ``Reports``."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import attrs


#: How each numeric kind is named in an error message.
KINDS = {int: "a whole number", float: "a number"}


def _env(name, default, cast=str):
    """The variable ``BOTREPORTS_<name>`` cast to ``cast``, or ``default`` when unset or empty.
    A value that is not a number of the right kind is a ``ValueError`` naming the variable."""
    value = os.environ.get("BOTREPORTS_" + name)
    if value is None or value == "":
        return default
    if cast is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    try:
        number = cast(value)
    except ValueError:
        raise ValueError(f"BOTREPORTS_{name} must be {KINDS.get(cast, cast.__name__)}, not {value!r}") from None
    if cast is float and not math.isfinite(number):
        raise ValueError(f"BOTREPORTS_{name} must be a finite number, not {value!r}")
    return number


@attrs.define
class Settings:
    """Every tunable of a ``Reports`` instance, with the environment variable that sets it."""

    data_dir: Path = attrs.field(converter=Path)
    #: ``BOTREPORTS_DATA``: analytics source URL; default ``sqlite:///<data_dir>/analytics.db``.
    data_url: Optional[str] = None
    #: ``BOTREPORTS_STORE``: metadata store, ``postgresql://...`` (several hosts) or an SQLite file;
    #: default ``<data_dir>/botreports.db``.
    store_url: Optional[str] = None
    #: ``BOTREPORTS_ARTIFACTS``: where report files live, ``s3://bucket/prefix`` (endpoint, region and
    #: credentials from the standard ``AWS_*`` variables and files); default ``<data_dir>/reports``.
    artifacts_url: Optional[str] = None
    #: ``BOTREPORTS_MAX_RANGE_DAYS``: longest period a report may cover.
    max_range_days: int = 400
    #: ``BOTREPORTS_RETENTION_DAYS``: reports expire after this many days; a fraction is allowed
    #: (``0.5`` keeps files 12 hours), nothing below one minute.
    retention_days: float = 30
    #: ``BOTREPORTS_DATA_RETENTION_DAYS``: conversations older than this are flagged by compliance.
    data_retention_days: int = 365
    #: ``BOTREPORTS_SECRET``: key for signed links; generated into the data dir when unset.
    secret: Optional[str] = None
    #: ``BOTREPORTS_MAX_SECTIONS``: most sections a custom report may ask for.
    max_sections: int = 30
    #: ``BOTREPORTS_JWT_SECRET``: HS256 key of botserver's bearer tokens; unset disables bearer tokens.
    jwt_secret: Optional[str] = None
    #: ``BOTREPORTS_JWT_ISSUER`` and ``BOTREPORTS_JWT_AUDIENCE``: the ``iss`` and ``aud`` a token must carry.
    jwt_issuer: str = "general-bots"
    jwt_audience: str = "general-bots-api"
    #: ``BOTREPORTS_JWT_ROLE_MAP``: ``Admin=admin,reports.read=report_viewer,...``; empty keeps the default map.
    jwt_role_map: str = ""
    #: ``BOTREPORTS_JWT_MAX_LIFETIME``: seconds a bearer token may live (``exp - iat``, or ``exp`` - now
    #: without ``iat``); longer-lived tokens are refused. botserver's access tokens live 15 minutes.
    jwt_max_lifetime: int = 86400
    #: ``BOTREPORTS_AUTH_FAILURE_LIMIT``: failed credentials (keys, tokens, link signatures) a client
    #: address may send per minute before its requests are answered 429; 0 turns it off.
    auth_failure_limit: int = 30
    #: ``BOTREPORTS_ALLOWED_HOSTS``: ``Host`` names links may be built on when ``BOTREPORTS_PUBLIC_URL``
    #: is unset (comma-separated, ports ignored, ``*`` any); another host gets a 400.
    allowed_hosts: str = "localhost,127.0.0.1,::1"
    #: ``BOTREPORTS_TRUSTED_PROXY``: address of the reverse proxy in front of ``serve``, whose
    #: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed; unset: nobody's are.
    trusted_proxy: Optional[str] = None
    #: ``BOTREPORTS_RATE_LIMIT``: requests per minute per API key or token subject; 0 turns it off.
    rate_limit: int = 600
    #: ``BOTREPORTS_MAX_UNFINISHED``: pending or running reports an organisation may have at once; 0 = no cap.
    max_unfinished: int = 20
    #: ``BOTREPORTS_MAX_BODY_BYTES`` (JSON bodies) and ``BOTREPORTS_MAX_EVENTS_BYTES`` (NDJSON ingest).
    max_body_bytes: int = 1_048_576
    max_events_bytes: int = 64 * 1_048_576
    #: ``BOTREPORTS_LINK_TTL``: seconds a signed download link stays valid.
    link_ttl: int = 3600
    #: ``BOTREPORTS_PUBLIC_URL``: base URL for links (e.g. ``https://bots.example.com``); default: the request's.
    public_url: Optional[str] = None
    #: ``BOTREPORTS_HTTP_CONNECTION_LIMIT``: connections ``serve`` keeps open at once (idle ones included);
    #: further clients wait in the listen backlog.
    http_connection_limit: int = 1000
    #: ``BOTREPORTS_HTTP_IDLE_TIMEOUT``: seconds ``serve`` keeps a connection that sends and receives nothing.
    http_idle_timeout: float = 30
    # -- jobs, schedules and delivery --
    #: ``BOTREPORTS_LEASE_SECONDS``: a worker's claim on a report, renewed every third of it while it
    #: works; a crashed worker's report is retried this long after its last renewal.
    lease_seconds: float = 30
    #: ``BOTREPORTS_REPORT_TIMEOUT``: seconds one report may run before it fails as timed out.
    report_timeout: float = 600
    #: ``BOTREPORTS_MAX_ATTEMPTS``: runs of a report (first one included) for transient errors and lost workers.
    max_attempts: int = 3
    #: ``BOTREPORTS_REQUEUE_AFTER``: a report pending this long (s) is enqueued again (its message was
    #: lost with a flushed queue). Idle workers poll twice a second, so a healthy queue starts a report
    #: long before; a duplicate message only costs the conditional update that one worker wins.
    requeue_after: float = 120
    #: ``BOTREPORTS_RETRY_BACKOFF``: seconds before the first retry; doubled for each later one.
    retry_backoff: float = 5
    #: ``BOTREPORTS_SCHEDULE_MIN_INTERVAL``: minutes a schedule must leave between two runs.
    schedule_min_interval: int = 5
    #: ``BOTREPORTS_SCHEDULE_MAX_RECIPIENTS``: most recipients (addresses and webhooks) of a schedule.
    schedule_max_recipients: int = 20
    #: ``BOTREPORTS_SCHEDULE_GRACE``: minutes after its time a missed run still fires (after downtime).
    schedule_grace: int = 60
    #: ``BOTREPORTS_RETENTION_BATCH``: reports the retention sweep expires per batch.
    retention_batch: int = 200
    #: ``BOTREPORTS_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_FROM``: the mail server and sender.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: Optional[str] = None
    smtp_password: Optional[str] = None
    smtp_from: str = "botreports@localhost"
    #: ``BOTREPORTS_SMTP_SECURITY``: ``none``, ``starttls`` or ``ssl``.
    smtp_security: str = "none"
    #: ``BOTREPORTS_SMTP_TIMEOUT``: seconds to wait for the mail server.
    smtp_timeout: float = 30
    #: ``BOTREPORTS_MAX_ATTACHMENT_BYTES``: larger files are mailed as a signed link.
    max_attachment_bytes: int = 10 * 1_048_576
    #: ``BOTREPORTS_DELIVERY_LINK_TTL``: seconds a link sent by mail or webhook stays valid.
    delivery_link_ttl: int = 7 * 86400
    #: ``BOTREPORTS_DELIVERY_ATTEMPTS``: tries per recipient before a delivery is given up.
    delivery_attempts: int = 3
    #: ``BOTREPORTS_WEBHOOK_ALLOW_PRIVATE``: let webhooks reach private, loopback and link-local addresses.
    webhook_allow_private: bool = False

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then the environment, then ``overrides`` (None means not given)."""
        values = {
            "data_dir": _env("DATA_DIR", "./data"),
            "data_url": _env("DATA", None),
            "store_url": _env("STORE", None),
            "artifacts_url": _env("ARTIFACTS", None),
            "max_range_days": _env("MAX_RANGE_DAYS", 400, int),
            "retention_days": _env("RETENTION_DAYS", 30, float),
            "data_retention_days": _env("DATA_RETENTION_DAYS", 365, int),
            "secret": _env("SECRET", None),
            "max_sections": _env("MAX_SECTIONS", 30, int),
            "jwt_secret": _env("JWT_SECRET", None),
            "jwt_issuer": _env("JWT_ISSUER", "general-bots"),
            "jwt_audience": _env("JWT_AUDIENCE", "general-bots-api"),
            "jwt_role_map": _env("JWT_ROLE_MAP", ""),
            "jwt_max_lifetime": _env("JWT_MAX_LIFETIME", 86400, int),
            "auth_failure_limit": _env("AUTH_FAILURE_LIMIT", 30, int),
            "allowed_hosts": _env("ALLOWED_HOSTS", "localhost,127.0.0.1,::1"),
            "trusted_proxy": _env("TRUSTED_PROXY", None),
            "rate_limit": _env("RATE_LIMIT", 600, int),
            "max_unfinished": _env("MAX_UNFINISHED", 20, int),
            "max_body_bytes": _env("MAX_BODY_BYTES", 1_048_576, int),
            "max_events_bytes": _env("MAX_EVENTS_BYTES", 64 * 1_048_576, int),
            "link_ttl": _env("LINK_TTL", 3600, int),
            "public_url": _env("PUBLIC_URL", None),
            "http_connection_limit": _env("HTTP_CONNECTION_LIMIT", 1000, int),
            "http_idle_timeout": _env("HTTP_IDLE_TIMEOUT", 30, float),
            "lease_seconds": _env("LEASE_SECONDS", 30, float),
            "report_timeout": _env("REPORT_TIMEOUT", 600, float),
            "max_attempts": _env("MAX_ATTEMPTS", 3, int),
            "requeue_after": _env("REQUEUE_AFTER", 120, float),
            "retry_backoff": _env("RETRY_BACKOFF", 5, float),
            "schedule_min_interval": _env("SCHEDULE_MIN_INTERVAL", 5, int),
            "schedule_max_recipients": _env("SCHEDULE_MAX_RECIPIENTS", 20, int),
            "schedule_grace": _env("SCHEDULE_GRACE", 60, int),
            "retention_batch": _env("RETENTION_BATCH", 200, int),
            "smtp_host": _env("SMTP_HOST", "localhost"),
            "smtp_port": _env("SMTP_PORT", 25, int),
            "smtp_user": _env("SMTP_USER", None),
            "smtp_password": _env("SMTP_PASSWORD", None),
            "smtp_from": _env("SMTP_FROM", "botreports@localhost"),
            "smtp_security": _env("SMTP_SECURITY", "none"),
            "smtp_timeout": _env("SMTP_TIMEOUT", 30, float),
            "max_attachment_bytes": _env("MAX_ATTACHMENT_BYTES", 10 * 1_048_576, int),
            "delivery_link_ttl": _env("DELIVERY_LINK_TTL", 7 * 86400, int),
            "delivery_attempts": _env("DELIVERY_ATTEMPTS", 3, int),
            "webhook_allow_private": _env("WEBHOOK_ALLOW_PRIVATE", False, bool),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["retention_days"] * 1440 >= 1:  # also refuses NaN
            raise ValueError(f"BOTREPORTS_RETENTION_DAYS must be at least one minute (0.000695 days), "
                             f"not {values['retention_days']!r}")
        return cls(**values)

    @property
    def analytics_url(self) -> str:
        return self.data_url or f"sqlite://{(self.data_dir / 'analytics.db').resolve()}"
