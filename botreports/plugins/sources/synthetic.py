"""Synthetic analytics data for demos, tests and benchmarks.

Several organisations, bots on four channels, users who return, a daily and
weekly rhythm, conversations that end resolved, abandoned or handed off,
satisfaction scores, reply latencies with a long tail, LLM calls across
models, errors and incidents, system samples and audit events (denied ones
included). Deterministic for a given seed; exactly ``messages`` messages.
"""
from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path
from typing import Dict, Optional

from .sqlite import create_database, create_indexes, insert_rows

ORGS = ("org-acme", "org-globex", "org-initech", "org-umbrella", "org-stark")
CHANNELS = ("web", "whatsapp", "teams", "telegram")
CHANNEL_WEIGHTS = (45, 30, 15, 10)
STATUSES = ("resolved", "abandoned", "handed_off", "open")
STATUS_WEIGHTS = (62, 20, 10, 8)
INTENTS = ("greeting", "order_status", "billing", "reset_password", "pricing", "complaint",
           "opening_hours", "cancel_subscription", "technical_issue", "talk_to_human", "goodbye")
MODELS = {  # model: (weight, USD per 1k input tokens, USD per 1k output tokens)
    "gpt-4o": (35, 0.0025, 0.01),
    "gpt-4o-mini": (45, 0.00015, 0.0006),
    "claude-3-haiku": (20, 0.00025, 0.00125),
}
# Relative traffic per UTC hour: quiet nights, busy office hours.
HOURLY = (2, 1, 1, 1, 1, 2, 4, 7, 10, 12, 13, 13, 12, 13, 13, 12, 11, 9, 8, 7, 6, 5, 4, 3)
BOT_NAMES = ("Support", "Sales", "HR Helpdesk", "IT Desk", "Onboarding", "Billing", "Booking", "FAQ")
AUDIT_ACTIONS = ("login", "bot.update", "bot.publish", "user.invite", "user.delete", "settings.change",
                 "export.data", "kb.upload", "role.grant", "api_key.create")
ADMIN_ACTIONS = ("bot.publish", "user.delete", "settings.change", "role.grant", "api_key.create")

DAY_MS = 86_400_000


def _end_ms(end_date: Optional[dt.date]) -> int:
    if end_date is None:
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        return int(now.timestamp() * 1000)
    midnight = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(0), tzinfo=dt.timezone.utc)
    return int(midnight.timestamp() * 1000)


def generate(path: Path, *, days: int = 30, bots: int = 20, messages: int = 100_000, seed: int = 0,
             end_date: Optional[dt.date] = None, orgs: int = 3) -> Dict[str, int]:
    """Write a new analytics file at ``path`` (atomically replacing it); returns row counts."""
    if days < 1 or bots < 1 or messages < 0 or not 1 <= orgs <= len(ORGS):
        raise ValueError("days and bots must be at least 1, messages at least 0, orgs 1 to 5")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    conn = create_database(tmp)
    conn.execute("PRAGMA journal_mode = OFF")  # a new file: nothing to protect until it is renamed
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(seed)
    end = _end_ms(end_date)
    start = end - days * DAY_MS
    org_ids = ORGS[:orgs]
    counts: Dict[str, int] = {}

    def load(table, rows):
        conn.execute("BEGIN")
        insert_rows(conn, table, rows)
        conn.execute("COMMIT")
        counts[table] = counts.get(table, 0) + len(rows)

    # Bots: spread over organisations, some much busier than others.
    bot_rows, bot_org, bot_weight = [], [], []
    for index in range(bots):
        org = org_ids[index % len(org_ids)]
        bot_rows.append((f"bot-{index + 1:03d}", org, f"{org.split('-')[1].title()} {BOT_NAMES[index % len(BOT_NAMES)]}",
                         start - rng.randint(30, 400) * DAY_MS))
        bot_org.append(org)
        bot_weight.append(rng.paretovariate(1.5))
    load("bots", bot_rows)
    bot_ids = [row[0] for row in bot_rows]

    users_per_org = max(20, messages // (25 * len(org_ids)))
    incidents = [(start + rng.randint(0, max(1, days * DAY_MS - 3 * 3_600_000)), 2 * 3_600_000)
                 for _ in range(max(1, days // 12))]
    day_weights = []
    first_day = dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc).date()
    for d in range(days):
        weekday = (first_day + dt.timedelta(days=d)).weekday()
        day_weights.append(0.55 if weekday >= 5 else 1.0)
    hours = list(range(24))
    model_names = list(MODELS)
    model_weights = [MODELS[m][0] for m in model_names]

    conversations, msgs, calls = [], [], []
    message_no = call_no = conv_no = 0
    remaining = messages
    random_ = rng.random
    expovariate = rng.expovariate
    lognormvariate = rng.lognormvariate
    while remaining > 0:
        conv_no += 1
        b = rng.choices(range(bots), bot_weight)[0]
        bot, org = bot_ids[b], bot_org[b]
        channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        user = f"usr-{org[4:7]}-{int(users_per_org * random_() ** 2.2):06d}"
        day = rng.choices(range(days), day_weights)[0]
        hour = rng.choices(hours, HOURLY)[0]
        t = start + day * DAY_MS + hour * 3_600_000 + rng.randint(0, 3_599_999)
        t = min(t, end - 3 * 3_600_000) if end - start > 3 * 3_600_000 else t
        count = min(remaining, 2 * (1 + min(19, int(expovariate(1 / 3.0)))))
        remaining -= count
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
        in_incident = any(s <= t < s + length for s, length in incidents)
        conv_id = f"c{conv_no}"
        for i in range(count):
            message_no += 1
            if i % 2 == 0:
                t += int(expovariate(1 / 20_000)) + 1_000 if i else 0
                intent = INTENTS[0] if i == 0 else INTENTS[1 + int(random_() ** 1.6 * (len(INTENTS) - 1))]
                msgs.append((f"m{message_no}", org, conv_id, bot, channel, user, "in", t, None, None,
                             intent, 0))
            else:
                latency = int(lognormvariate(6.6, 0.55) * (4 if in_incident else 1))
                if random_() < 0.02:
                    latency *= 8  # the long tail: slow tools, cold caches
                t += latency
                is_error = random_() < (0.15 if in_incident else 0.012)
                tokens = 40 + int(expovariate(1 / 180))
                msgs.append((f"m{message_no}", org, conv_id, bot, channel, user, "out", t, latency, tokens,
                             None, int(is_error)))
                if random_() < 0.7:
                    call_no += 1
                    model = rng.choices(model_names, model_weights)[0]
                    _, price_in, price_out = MODELS[model]
                    input_tokens = 150 + int(expovariate(1 / 900))
                    calls.append((f"l{call_no}", org, bot, conv_id, model, t - latency // 4, input_tokens,
                                  tokens, int(latency * 0.8), int(not is_error),
                                  round(input_tokens / 1000 * price_in + tokens / 1000 * price_out, 6)))
        if status == "open":
            ended = None
        else:
            ended = t
        if random_() < 0.38 and status != "open":
            base = {"resolved": 4.4, "abandoned": 2.1, "handed_off": 3.2}[status]
            satisfaction = max(1, min(5, int(round(rng.gauss(base, 0.9)))))
        else:
            satisfaction = None
        conversations.append((conv_id, org, bot, user, channel, msgs[-count][7], ended, status, satisfaction,
                              count))
        if len(msgs) >= 100_000:
            load("messages", msgs); msgs = []
            load("conversations", conversations); conversations = []
            load("llm_calls", calls); calls = []
    load("messages", msgs)
    load("conversations", conversations)
    load("llm_calls", calls)

    samples = []
    for org in org_ids:
        for host in (f"{org[4:]}-app-1", f"{org[4:]}-app-2"):
            level = rng.uniform(20, 45)
            for t in range(start, end, 300_000):
                hour = (t // 3_600_000) % 24
                load_factor = HOURLY[hour] / 13
                busy = any(s <= t < s + length for s, length in incidents)
                requests = int(load_factor * rng.uniform(200, 400))
                errors = int(requests * (0.12 if busy else rng.uniform(0, 0.01)))
                samples.append((org, host, t, round(min(99.0, level + 40 * load_factor + (30 if busy else 0)
                                                         + rng.uniform(-5, 5)), 1),
                                round(rng.uniform(40, 75), 1), requests, errors,
                                round(rng.lognormvariate(6.2, 0.3) * (3 if busy else 1), 1)))
    load("system_samples", samples)

    events, event_no = [], 0
    for org in org_ids:
        actors = [f"admin{n}@{org[4:]}.example" for n in range(1, 4)] + [f"agent{n}@{org[4:]}.example" for n in range(1, 6)]
        org_bots = [b for b, o in zip(bot_ids, bot_org) if o == org] or [None]
        for _ in range(days * 25):
            event_no += 1
            action = rng.choice(AUDIT_ACTIONS)
            actor = rng.choice(actors)
            result = rng.choices(("allowed", "denied", "error"), (85, 12, 3))[0]
            if action in ADMIN_ACTIONS and actor.startswith("agent") and result == "allowed":
                result = "denied" if random_() < 0.6 else "allowed"
            events.append((f"a{event_no}", org, rng.choice(org_bots), start + rng.randint(0, days * DAY_MS - 1),
                           actor, action, action.split(".")[0], f"r{rng.randint(1, 500)}", result,
                           f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"))
    load("audit_events", events)

    create_indexes(conn)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, path)
    return counts
