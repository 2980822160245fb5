"""The ``botreports`` command: demo data, ingest, one-off reports, API keys,
plugins, and (in later adapters) the service and its workers."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

from ..core.errors import BotReportsError, ValidationError


#: The option of ``generate`` that fills each request field, so an error names what the user typed.
GENERATE_OPTIONS = {"type": "--type", "format": "--format", "start_date": "--start", "end_date": "--end",
                    "period": "--period", "timezone": "--timezone", "bot_id": "--bot-id", "channel": "--channel",
                    "title": "--title", "sections": "--sections", "template_id": "--template",
                    "include_charts": "--no-charts", "data": "--data", "options": "--option"}


def _data_dir(value: Optional[str]) -> Path:
    return Path(value or os.environ.get("BOTREPORTS_DATA_DIR") or "./data")


def _positive(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, not {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must not be negative")
        return value
    return parse


def _seconds(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds, not {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be positive")
        return value
    return parse


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be an integer, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("--port must be between 0 and 65535")
    return value


def _date(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _reports(args, **kwargs):
    from ..core.service import Reports
    return Reports(data_dir=_data_dir(args.data_dir), data_source=getattr(args, "data", None),
                   store_url=getattr(args, "store", None), artifacts_url=getattr(args, "artifacts", None),
                   **kwargs)


def cmd_demo_data(args) -> int:
    from ..plugins.sources.synthetic import generate
    import time
    target = _data_dir(args.data_dir) / "analytics.db"
    started = time.perf_counter()
    counts = generate(target, days=args.days, bots=args.bots, messages=args.messages, seed=args.seed,
                      end_date=args.end_date, orgs=args.orgs)
    took = time.perf_counter() - started
    print(f"wrote {target} in {took:.1f} s: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
    return 0


def cmd_ingest(args) -> int:
    from ..core.service import SYSTEM
    rk = _reports(args, load_entrypoints=False)
    with open(args.file, "rb") as handle:
        result = rk.ingest(SYSTEM, handle)
    for table, count in sorted(result["inserted"].items()):
        print(f"{table}: {count:,} rows")
    for error in result["errors"]:
        print(f"line {error['line']}: {error['problem']}", file=sys.stderr)
    if result["errors"]:
        print(f"{len(result['errors'])} bad line(s); their batches were not written", file=sys.stderr)
        return 1
    return 0


def cmd_generate(args) -> int:
    from ..core.service import SYSTEM
    import attrs
    body = {"type": args.type, "format": args.format, "timezone": args.timezone}
    if args.period:
        body["period"] = args.period
    if args.start:
        body["start_date"] = args.start
    if args.end:
        body["end_date"] = args.end
    if args.bot_id:
        body["bot_id"] = args.bot_id if len(args.bot_id) > 1 else args.bot_id[0]
    if args.channel:
        body["channel"] = args.channel
    if args.title:
        body["title"] = args.title
    if args.sections:
        body["sections"] = [{"type": name.strip()} for name in args.sections.split(",") if name.strip()]
    if args.template:
        body["template_id"] = args.template
    if args.no_charts:
        body["include_charts"] = False
    rk = _reports(args)
    if args.option:
        from .cli_options import apply_options
        report_type = rk.report_types.get(args.type)
        apply_options(body, args.option, rk.sections, rk.exporters,
                      report_type.default_sections if report_type else ())
    principal = SYSTEM if args.org is None else attrs.evolve(SYSTEM, org_id=args.org)
    try:
        out = rk.render(principal, body, Path(args.out))
    except ValidationError as exc:
        raise _with_options(exc) from None
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


def _with_options(exc: ValidationError) -> ValidationError:
    """The same problems with each field led by the ``generate`` option that set it:
    ``--start (start_date): ...``, ``--sections (sections[0].type): ...``."""
    problems = []
    for detail in exc.details:
        field = detail["field"]
        option = GENERATE_OPTIONS.get(re.split(r"[.\[]", field, maxsplit=1)[0])
        if re.fullmatch(r"sections\[\d+\]\.(?!type$)\w+", field):  # a section's option: set by --option
            option = "--option"
        problems.append((f"{option} ({field})" if option else field, detail["problem"]))
    return ValidationError.from_problems(problems)


def cmd_migrate_store(args) -> int:
    from ..core.artifact_stores import open_artifacts
    from ..core.store_migration import copy_artifacts, copy_store
    from ..core.stores import open_store

    data_dir = _data_dir(args.data_dir)
    if not args.to_store and not args.to_artifacts:
        raise ValidationError.from_problems([("--to-store", "give --to-store, --to-artifacts or both")])
    source = open_store(args.store or os.environ.get("BOTREPORTS_STORE") or None, data_dir)
    if args.to_store:
        target = open_store(args.to_store, data_dir)
        for table, count in copy_store(source, target).items():
            print(f"{table}: {count} rows", file=sys.stderr)
        target.close()
    if args.to_artifacts:
        files = open_artifacts(args.artifacts or os.environ.get("BOTREPORTS_ARTIFACTS") or None, data_dir)
        count = copy_artifacts(source, files, open_artifacts(args.to_artifacts, data_dir))
        print(f"report files: {count} copied", file=sys.stderr)
    source.close()
    return 0


def cmd_keys_create(args) -> int:
    rk = _reports(args, load_entrypoints=False)
    plain, key = rk.create_api_key(args.org, args.role, args.name or "")
    print(plain)
    print(f"key {key.id} for {key.org_id} with role {key.role}; it is shown only once", file=sys.stderr)
    return 0


def cmd_keys_list(args) -> int:
    rk = _reports(args, load_entrypoints=False)
    for key in rk.list_api_keys(args.org):
        state = "revoked" if key["revoked"] else "active"
        print(f"{key['id']}  {key['org_id']}  {key['role']}  {key['prefix']}...  {key['created_at']}  {state}"
              f"  {key['name']}")
    return 0


def cmd_keys_revoke(args) -> int:
    rk = _reports(args, load_entrypoints=False)
    rk.revoke_api_key(args.key_id)
    print(f"key {args.key_id} revoked", file=sys.stderr)
    return 0


def cmd_tokens_revoke(args) -> int:
    given = [(kind, value) for kind, value in (("jti", args.jti), ("session", args.session),
                                               ("subject", args.subject)) if value is not None]
    if len(given) != 1:
        raise ValidationError.from_problems([("--jti/--session/--subject", "give exactly one of them")])
    (kind, value), before = given[0], None
    if args.issued_before is not None:
        if kind != "subject":
            raise ValidationError.from_problems([("--issued-before", "goes with --subject only")])
        from ..core.scheduling import parse_instant
        try:
            before = parse_instant(args.issued_before, "UTC", end=False)
        except ValueError as exc:
            raise ValidationError.from_problems([("--issued-before", str(exc))]) from None
    rk = _reports(args, load_entrypoints=False)
    row = rk.revoke_tokens(kind, value, before, args.reason or "")
    scope = f"issued before {row['issued_before']}" if kind == "subject" else "whenever issued"
    print(f"revoked bearer tokens with {kind} {value} ({scope}); every process refuses them within seconds",
          file=sys.stderr)
    return 0


def cmd_tokens_list(args) -> int:
    rk = _reports(args, load_entrypoints=False)
    for row in rk.list_token_revocations():
        before = f"  issued before {row['issued_before']}" if row["issued_before"] else ""
        print(f"{row['created_at']}  {row['kind']}  {row['value']}{before}  {row['reason'] or ''}".rstrip())
    return 0


def cmd_rollups(args) -> int:
    """``rollups rebuild`` / ``rollups refresh``: the rollups of botserver's PostgreSQL source."""
    rk = _reports(args, load_entrypoints=False)
    try:
        if rk.settings.analytics_url.split(":", 1)[0].split("+", 1)[0] not in ("postgresql", "postgres"):
            raise ValidationError.from_problems(
                [("--data", "rollups are kept in botserver's PostgreSQL database: give its postgresql:// URL"
                            " (or set BOTREPORTS_DATA)")])
        source = rk.source
        result = source.rebuild_rollups() if args.rollups_command == "rebuild" else source.refresh_rollups()
    finally:
        rk.close()
    print(result.describe(), file=sys.stderr if result.action == "off" else sys.stdout)
    return 1 if result.action == "off" else 0


#: ``verify``'s exit status when a number differs (0: every number is the same; 1 and 2: errors).
CHANGED_EXIT = 3


def cmd_verify(args) -> int:
    """Compute a stored report again and compare every number with the report as made."""
    from ..core.service import SYSTEM
    rk = _reports(args)
    try:
        result = rk.verify(SYSTEM, args.report_id)
    finally:
        rk.close()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(verification_text(result))
    return 0 if result["unchanged"] else CHANGED_EXIT


def verification_text(result: dict, limit: int = 200) -> str:
    """A verification as lines a person reads: the verdict, then each difference."""
    data = {True: "the data changed since", False: "the data did not change",
            None: "the source keeps no watermark"}[result["data_changed"]]
    head = (f"{result['report_id']}: {result['verdict']}: {result['difference_count']:,} difference(s) in "
            f"{result['numbers_compared']:,} numbers and {result['streamed_tables_compared']} raw table(s) "
            f"compared; {data}")
    lines = [head] + [f"note: {note}" for note in result["notes"]]
    for difference in result["differences"][:limit]:
        lines.append(f"  {difference['section_title']} / {difference['block']}: {difference['what']}: "
                     f"{_shown(difference['old'])} -> {_shown(difference['new'])}")
    if result["difference_count"] > limit:
        lines.append(f"  ... and {result['difference_count'] - limit:,} more (--json lists up to 1,000)")
    return "\n".join(lines)


def _shown(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        rows = value.get("rows")
        return f"{'?' if rows is None else format(rows, ',')} rows, sha256 {str(value.get('sha256'))[:12]}"
    return json.dumps(value, ensure_ascii=False, default=str)


def cmd_plugins(args) -> int:
    import tempfile

    # Listing what is loaded reads nothing of a data directory: a scratch one is made and removed,
    # so the command leaves no ./data behind.
    with tempfile.TemporaryDirectory(prefix="botreports-plugins-") as scratch:
        args.data_dir = scratch
        rk = _reports(args)
        try:
            data = {
                "plugins": rk.plugin_list(),
                **{kind: [{"name": name, "plugin": plugin}
                          for name, plugin in sorted(rk.registry_origins(kind).items())]
                   for kind in ("report_types", "sections", "exporters", "data_sources", "templates",
                                "delivery_channels")},
            }
        finally:
            rk.close()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("Plugins:")
    for plugin in data["plugins"]:
        print(f"  {plugin['name']}  [{plugin['origin']}]  hooks: {', '.join(plugin['hooks'])}")
    for kind in ("report_types", "sections", "exporters", "data_sources", "templates", "delivery_channels"):
        print(f"{kind.replace('_', ' ').capitalize()}:")
        for item in data[kind]:
            print(f"  {item['name']}  (from {item['plugin']})")
    return 0


def _service(args):
    """The long-running commands' start: log lines on stderr, the queue, and ``Reports`` on it."""
    import logging

    from .log_escaping import EscapeControlCharacters
    from .queue import make_queue
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every line of the service (waitress's, the worker's, a failed report's reason), not only the
    # access log, may quote what a client sent: none of them can start a line of its own.
    for handler in logging.getLogger().handlers:
        handler.addFilter(EscapeControlCharacters())
    queue = make_queue(args.queue, _data_dir(args.data_dir), args.workers)
    return queue, _reports(args, queue=queue)


def cmd_serve(args) -> int:
    import signal

    from .wsgi_server import create_server, proxy_adjustments

    if args.threads < 1:
        raise ValidationError.from_problems([("--threads", "must be at least 1")])
    if args.connection_limit is not None and args.connection_limit < 16:
        raise ValidationError.from_problems([("--connection-limit", "must be at least 16")])
    if args.idle_timeout is not None and not 1 <= args.idle_timeout <= 3600:
        raise ValidationError.from_problems([("--idle-timeout", "must be 1 to 3600 seconds")])
    queue, rk = _service(args)
    try:
        if args.workers > 0:
            queue.start()
        # waitress buffers a whole body before the app sees it: cap it near our own limits.
        largest_body = max(rk.settings.max_body_bytes, rk.settings.max_events_bytes) + 65536
        settings = rk.settings
        limit = args.connection_limit if args.connection_limit is not None else settings.http_connection_limit
        idle = args.idle_timeout if args.idle_timeout is not None else settings.http_idle_timeout
        from .console import service_app

        server = create_server(service_app(rk), host=args.host, port=args.port, threads=args.threads,
                               connection_limit=limit, idle_timeout=idle, ident="botreports",
                               max_request_body_size=largest_body, **proxy_adjustments(settings.trusted_proxy))
        # SIGTERM (docker stop, systemd) ends the server like Ctrl-C: the queue is stopped cleanly.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        print(f"botreports: serving http://{args.host}:{server.effective_port}/api/v1/reports "
              f"(console at http://{args.host}:{server.effective_port}/, OpenAPI at /openapi.json; queue {getattr(queue, 'name', queue)}, {args.workers} worker(s)); "
              "Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            server.run()
        except KeyboardInterrupt:
            print("botreports: stopping", file=sys.stderr)
        finally:
            server.close()
    finally:
        rk.close()
    return 0


def cmd_worker(args) -> int:
    import signal
    import threading

    if args.workers < 1:
        raise ValidationError.from_problems([("--workers", "must be at least 1")])
    if args.queue == "immediate":
        raise ValidationError.from_problems([("--queue", "a worker needs a real queue: sqlite or redis://...")])
    queue, rk = _service(args)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        queue.start()
        print(f"botreports: worker on {queue.name} with {args.workers} thread(s); Ctrl-C stops",
              file=sys.stderr, flush=True)
        stopping.wait()
        print("botreports: stopping; running reports finish first", file=sys.stderr, flush=True)
    finally:
        rk.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botreports", description="Analytics reports about chat bots.")
    parser.add_argument("--version", action="version", version=_version())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default ./data, env BOTREPORTS_DATA_DIR)")
    common.add_argument("--store", help="metadata store: postgresql://user@host/db or an SQLite file"
                        " (default <data-dir>/botreports.db, env BOTREPORTS_STORE)")
    common.add_argument("--artifacts", help="report files: s3://bucket/prefix (AWS_ENDPOINT_URL, AWS_REGION and"
                        " credentials as for any AWS tool; default <data-dir>/reports, env BOTREPORTS_ARTIFACTS)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo-data", parents=[common], help="synthesize demo analytics data",
                       description="Write <data-dir>/analytics.db with realistic synthetic bot data.")
    p.add_argument("--days", type=_positive("--days"), default=30, help="days of history (default 30)")
    p.add_argument("--bots", type=_positive("--bots"), default=20, help="number of bots (default 20)")
    p.add_argument("--messages", type=_positive("--messages"), default=200_000, help="messages in total")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    p.add_argument("--orgs", type=_positive("--orgs"), default=3, help="organisations, 1 to 5 (default 3)")
    p.add_argument("--end-date", type=_date, help="last day of data (default: up to now)")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("ingest", parents=[common], help="load events from an NDJSON file",
                       description="Load events, one JSON object a line with a \"table\" key.")
    p.add_argument("file", help="NDJSON file")
    p.add_argument("--data", help="analytics source URL (default: the data dir's SQLite file)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("generate", parents=[common], help="generate one report synchronously",
                       description="Generate one report and write it to --out.")
    p.add_argument("--type", required=True, help="report type (usage, custom, ...)")
    p.add_argument("--start", help="first day, YYYY-MM-DD")
    p.add_argument("--end", help="last day (inclusive), YYYY-MM-DD")
    p.add_argument("--period", help="a relative period instead of --start/--end, e.g. last_7_days "
                                     "(without either: last_30_days)")
    p.add_argument("--format", default="json", help="output format (default json)")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--timezone", default="UTC", help="IANA timezone for days and hours (default UTC)")
    p.add_argument("--bot-id", action="append", help="only this bot (repeatable)")
    p.add_argument("--channel", help="only this channel")
    p.add_argument("--title", help="report title")
    p.add_argument("--sections", help="comma-separated sections (custom reports)")
    p.add_argument("--template", help="template id")
    p.add_argument("--org", help="only this organisation (default: all)")
    p.add_argument("--no-charts", action="store_true", help="leave charts out")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a format option (csv_dialect=semicolon) or SECTION.KEY=VALUE a section's "
                        "(top_intents.limit=5); repeatable; GET /api/v1/reports/catalog lists them")
    p.add_argument("--data", help="analytics source URL (sqlite:///path, postgresql://...)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("keys", help="API keys", description="Manage API keys.")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    keys.required = True
    k = keys.add_parser("create", parents=[common], help="create an API key and print it once",
                        description="Create an API key; only its hash is stored.")
    k.add_argument("--role", required=True, help="report_viewer, report_creator, report_admin or admin")
    k.add_argument("--org", required=True, help="organisation id")
    k.add_argument("--name", help="a label for the key")
    k.set_defaults(func=cmd_keys_create)
    k = keys.add_parser("list", parents=[common], help="list API keys (never the keys themselves)",
                        description="List API keys: id, organisation, role, first characters, created, state, name.")
    k.add_argument("--org", help="only this organisation")
    k.set_defaults(func=cmd_keys_list)
    k = keys.add_parser("revoke", parents=[common], help="revoke an API key",
                        description="Revoke an API key: requests made with it are refused from now on.")
    k.add_argument("key_id", help="the key's id (key-..., as `keys list` shows it)")
    k.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("tokens", help="revoke bearer tokens", description="Revoke bearer tokens before they expire.")
    tokens = p.add_subparsers(dest="tokens_command", metavar="ACTION")
    tokens.required = True
    t = tokens.add_parser("revoke", parents=[common], help="revoke a token, a session's tokens or a subject's tokens",
                          description="Revoke bearer tokens: one token (--jti), every token of a sign-in (--session,"
                                      " the session_id claim) or every token of a subject issued before a time"
                                      " (--subject, with --issued-before, default now). Every process refuses them"
                                      " within seconds.")
    t.add_argument("--jti", help="the token's jti claim")
    t.add_argument("--session", help="the tokens' session_id claim")
    t.add_argument("--subject", help="the tokens' sub claim")
    t.add_argument("--issued-before", help="with --subject: revoke tokens issued before this time (ISO 8601, UTC"
                                           " unless it says otherwise; default now)")
    t.add_argument("--reason", help="why, for the list and the audit log")
    t.set_defaults(func=cmd_tokens_revoke)
    t = tokens.add_parser("list", parents=[common], help="list revocations",
                          description="List token revocations, oldest first.")
    t.set_defaults(func=cmd_tokens_list)

    p = sub.add_parser("rollups", help="rollups of botserver's PostgreSQL source",
                       description="Keep the rollups of a postgresql:// source in the schema botreports owns"
                                   " (docs/botserver_rollups.md). The worker refreshes them every few minutes.")
    rollups = p.add_subparsers(dest="rollups_command", metavar="ACTION")
    rollups.required = True
    for action, text in (("rebuild", "build every rollup anew from botserver's tables (waits for a running"
                                      " refresh)"),
                         ("refresh", "bring the rollups up to date now: the lateness window re-read, new rows added"
                                     " (builds them if absent)")):
        r = rollups.add_parser(action, parents=[common], help=text, description=text[0].upper() + text[1:] + ".")
        r.add_argument("--data", help="botserver's database, postgresql://... (URL options such as rollup_schema"
                                      " and rollup_lateness apply)")
        r.set_defaults(func=cmd_rollups)

    p = sub.add_parser("verify", parents=[common], help="compute a stored report again and compare its numbers",
                       description="Compute a completed report again from its parameters over the data as it is "
                                   "now, and say whether every number is the same, or which differ. Exit status 0: "
                                   f"unchanged; {CHANGED_EXIT}: changed.")
    p.add_argument("report_id", help="the report's id (rpt-...)")
    p.add_argument("--json", action="store_true", help="print the whole comparison as JSON")
    p.add_argument("--data", help="analytics source URL (default: the data dir's SQLite file)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("plugins", parents=[common], help="list plugins and what they register",
                       description="Loaded plugins, report types, sections, exporters and where each came from.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("serve", parents=[common], help="run the HTTP API with its worker",
                       description="Serve the Reports API with waitress, and run report workers in-process.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--queue", help="sqlite (default, <data-dir>/queue.db), redis://host:6379/0 or immediate")
    p.add_argument("--workers", type=_positive("--workers"), default=2,
                   help="report worker threads in this process (default 2; 0 = use `botreports worker`)")
    p.add_argument("--threads", type=_positive("--threads"), default=8, help="HTTP threads (default 8)")
    p.add_argument("--connection-limit", type=_positive("--connection-limit"),
                   help="connections kept open at once, idle ones included (default 1000, env "
                        "BOTREPORTS_HTTP_CONNECTION_LIMIT)")
    p.add_argument("--idle-timeout", type=_seconds("--idle-timeout"),
                   help="seconds before a connection with no traffic is closed (default 30, env "
                        "BOTREPORTS_HTTP_IDLE_TIMEOUT)")
    p.add_argument("--data", help="analytics source URL (default: the data dir's SQLite file)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate-store", parents=[common], help="copy metadata and report files to PostgreSQL / S3",
                       description="Copy every row of the metadata store (--store, default the data dir's file) into"
                       " an empty one, and every report file (--artifacts, default the data dir) to another store.")
    p.add_argument("--to-store", help="target metadata store, postgresql://... (must hold no reports yet)")
    p.add_argument("--to-artifacts", help="target for report files, s3://bucket/prefix")
    p.set_defaults(func=cmd_migrate_store)

    p = sub.add_parser("worker", parents=[common], help="run report workers only (no HTTP)",
                       description="Run queued reports, scheduled runs, the reconciler and the retention sweep.")
    p.add_argument("--queue", help="sqlite (default, <data-dir>/queue.db) or redis://host:6379/0")
    p.add_argument("--workers", type=_positive("--workers"), default=2, help="worker threads (default 2)")
    p.add_argument("--data", help="analytics source URL (default: the data dir's SQLite file)")
    p.set_defaults(func=cmd_worker)
    return parser


def _version() -> str:
    from .. import __version__
    return f"botreports {__version__}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        for detail in exc.details:
            print(f"botreports: error: {detail['field']}: {detail['problem']}", file=sys.stderr)
        return 2
    except BotReportsError as exc:
        print(f"botreports: error: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"botreports: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
