"""Plugins and a worker process for the job tests: sections that take their
time, fail once, or fail for good, and a worker that runs them.

Run as ``python tests/jobs_plugins.py DATA_DIR QUEUE_URL WORKERS`` to start a
worker process with these plugins (it stops on SIGTERM).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from botreports import hookimpl  # noqa: E402
from botreports.core.models import Kpi, Kpis, Option, Section  # noqa: E402


def _slow(ctx):
    for step in range(ctx.options["steps"]):
        time.sleep(ctx.options["delay"])
    return [Kpis([Kpi("steps", "Steps", ctx.options["steps"])])]


class _Flaky:
    """Fails with a connection error the first ``failures`` times (counted in a file, across processes)."""

    def __init__(self, counter_path):
        self.counter_path = counter_path

    def __call__(self, ctx):
        count = int(open(self.counter_path).read() or 0) if os.path.exists(self.counter_path) else 0
        with open(self.counter_path, "w") as handle:
            handle.write(str(count + 1))
        if count < ctx.options["failures"]:
            raise ConnectionError(f"analytics database unreachable (call {count + 1})")
        return [Kpis([Kpi("calls", "Calls", count + 1)])]


def _broken(ctx):
    raise ValueError("the metric definition is wrong")


class JobSections:
    """``slow_steps``, ``flaky`` and ``broken`` sections."""

    def __init__(self, counter_path="flaky.count"):
        self.counter_path = str(counter_path)

    @hookimpl
    def register_sections(self):
        return [
            Section("slow_steps", "Slow steps", _slow, options={
                "steps": Option("int", 3, minimum=1, maximum=1000),
                "delay": Option("float", 0.05, minimum=0, maximum=10)}),
            Section("flaky", "Flaky", _Flaky(self.counter_path), options={"failures": Option("int", 1)}),
            Section("broken", "Broken", _broken),
        ]


def main(data_dir, queue_url, workers):
    import signal
    import threading

    from botreports import Reports
    from botreports.adapters.queue import make_queue

    queue = make_queue(queue_url, data_dir, int(workers))
    reports = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False,
                      plugins=[JobSections(os.path.join(data_dir, "flaky.count"))])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    queue.start()
    print("ready", flush=True)
    stop.wait()
    reports.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
