"""The errors botreports raises; each maps to one HTTP status and error code."""


class BotReportsError(Exception):
    """Base class: ``code`` is the machine-readable error, ``status`` the HTTP status."""

    status = 500
    code = "internal_error"

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def to_dict(self):
        """The error body of the API: ``{"error", "message", "details"}``."""
        return {"error": self.code, "message": self.message, "details": self.details}


class ValidationError(BotReportsError):
    """Invalid input. ``details`` is a list of ``{"field", "problem"}``."""

    status = 400
    code = "invalid_parameters"

    @classmethod
    def from_problems(cls, problems):
        """Build one error from ``[(field, problem), ...]``, naming every field."""
        details = [{"field": field, "problem": problem} for field, problem in problems]
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        return cls(f"Invalid parameters: {summary}", details)


class Unauthorized(BotReportsError):
    """No credentials, or credentials that are not valid."""

    status = 401
    code = "missing_token"


class InvalidCredentials(Unauthorized):
    """Credentials were given but are wrong, expired or revoked."""

    code = "invalid_token"


class PermissionDenied(BotReportsError):
    """The principal is known but may not do this."""

    status = 403
    code = "insufficient_permissions"


class NotFound(BotReportsError):
    """No such object, or it belongs to another organisation."""

    status = 404
    code = "not_found"


class Conflict(BotReportsError):
    """The object is not in a state that allows this (e.g. download of a running report)."""

    status = 409
    code = "conflict"


class Gone(BotReportsError):
    """The object existed but is no more (a report past its ``expires_at``)."""

    status = 410
    code = "expired"


class PayloadTooLarge(BotReportsError):
    """A request body above the configured limit."""

    status = 413
    code = "payload_too_large"


class RateLimited(BotReportsError):
    """Too many requests or too many unfinished reports; ``retry_after`` in seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message, retry_after=1, details=None):
        super().__init__(message, details)
        self.retry_after = retry_after


class StorageUnavailable(BotReportsError):
    """The metadata store cannot write now (disk or database full); ``retry_after`` in seconds."""

    status = 503
    code = "storage_unavailable"

    def __init__(self, message, retry_after=30, details=None):
        super().__init__(message, details)
        self.retry_after = retry_after


class PluginError(BotReportsError):
    """A plugin is broken or two plugins register the same name."""

    code = "plugin_error"


class ReportFailed(BotReportsError):
    """Generation of one report failed; the message is the reason shown in its status."""

    code = "report_failed"


class ExportFailed(ReportFailed):
    """An exporter raised while writing a report: the message names the format and its plugin."""

    code = "export_failed"


class TransientError(BotReportsError):
    """A failure worth another attempt (a dependency briefly unreachable, a busy database):
    raised from a section, an exporter or a delivery channel, the report is retried with
    backoff up to ``BOTREPORTS_MAX_ATTEMPTS`` instead of failing at once."""

    code = "transient_error"
    status = 503
    transient = True
