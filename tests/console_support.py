"""The service as ``botreports serve`` builds it (JSON API and web console in one WSGI app),
on waitress in a thread, and a small HTML reader for the console's pages."""
from __future__ import annotations

import re
import threading
from html.parser import HTMLParser
from typing import Dict, List, Optional

import requests


class ServedService:
    """``service_app(reports)`` served on 127.0.0.1 until ``stop()``."""

    def __init__(self, reports, threads: int = 4):
        from botreports.adapters.console import service_app
        from botreports.adapters.wsgi_server import create_server

        self.reports = reports
        self.server = create_server(service_app(reports), host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self.stopping:
                raise

    def stop(self) -> None:
        from waitress import wasyncore

        self.stopping = True
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map, ignore_all=True))
        except OSError:
            pass
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(url: str, key: str) -> requests.Session:
    """A ``requests`` session signed in to the console with ``key``."""
    session = requests.Session()
    page = session.get(f"{url}/signin", timeout=30)
    answer = session.post(f"{url}/signin", data={"csrf_token": csrf_of(page.text), "credential": key},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    return session


class Page(HTMLParser):
    """What the tests read from a page: elements by id, the field errors, table rows and links."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.ids: Dict[str, dict] = {}
        self.errors: Dict[str, str] = {}
        self.rows: List[List[str]] = []
        self.links: List[str] = []
        self.buttons: List[str] = []
        self.title = ""
        self._stack: List[tuple] = []
        self._row: Optional[List[str]] = None
        self._cell: Optional[List[str]] = None
        self._error_id: Optional[str] = None
        self._button: Optional[List[str]] = None
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = {"tag": tag, **attrs}
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag == "tr":
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag == "p" and "field-error" in (attrs.get("class") or ""):
            self._error_id = attrs.get("id", "")
            self.errors[self._error_id] = ""
        if tag == "button":
            self._button = []
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "p":
            self._error_id = None
        if tag == "button" and self._button is not None:
            self.buttons.append(" ".join("".join(self._button).split()))
            self._button = None
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._error_id is not None:
            self.errors[self._error_id] += data
        if self._button is not None:
            self._button.append(data)
        if self._in_title:
            self.title += data
