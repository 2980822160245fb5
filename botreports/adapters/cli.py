"""The ``botreports`` command: demo data, ingest, one-off reports, API keys,
plugins, and (in later adapters) the service and its workers."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from ..core.errors import BotReportsError, ValidationError


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


def _date(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _reports(args, **kwargs):
    from ..core.service import Reports
    return Reports(data_dir=_data_dir(args.data_dir), data_source=getattr(args, "data", None), **kwargs)


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
    principal = SYSTEM if args.org is None else attrs.evolve(SYSTEM, org_id=args.org)
    out = rk.render(principal, body, Path(args.out))
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


def cmd_keys_create(args) -> int:
    rk = _reports(args, load_entrypoints=False)
    plain, key = rk.create_api_key(args.org, args.role, args.name or "")
    print(plain)
    print(f"key {key.id} for {key.org_id} with role {key.role}; it is shown only once", file=sys.stderr)
    return 0


def cmd_plugins(args) -> int:
    rk = _reports(args)
    data = {
        "plugins": rk.plugin_list(),
        **{kind: [{"name": name, "plugin": plugin} for name, plugin in sorted(rk.registry_origins(kind).items())]
           for kind in ("report_types", "sections", "exporters", "data_sources", "templates", "delivery_channels")},
    }
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botreports", description="Analytics reports about chat bots.")
    parser.add_argument("--version", action="version", version=_version())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default ./data, env BOTREPORTS_DATA_DIR)")
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
    p.add_argument("--period", help="a relative period instead of --start/--end, e.g. last_7_days")
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

    p = sub.add_parser("plugins", parents=[common], help="list plugins and what they register",
                       description="Loaded plugins, report types, sections, exporters and where each came from.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)
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
