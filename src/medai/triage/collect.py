"""Collector for Turkish health Q&A sites: listing pages → question pages → text + department.

Built to be a good citizen: it obeys robots.txt (including Crawl-delay), waits between requests
to the same host, identifies itself with a User-Agent naming the project, backs off on 429/5xx,
and stops at a page budget. It is resumable: the queue and the visited URLs live in a state file
next to the CSV, which is appended to, so an interrupted run continues where it stopped.

Site layout is configurable with CSS selectors (``SiteLayout``); the defaults fit sites shaped
like doktorsitesi.com (``/blog/sorular/<bölüm>?sayfa=N`` listings).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import urllib.robotparser
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urljoin, urlsplit

import httpx

import medai
from medai.core.text import normalise, redact_pii
from medai.triage import departments

DEFAULT_USER_AGENT = (
    f"medai-collector/{medai.__version__} (hospital research data collection; "
    "respects robots.txt; set --user-agent to add your contact)"
)
CSV_FIELDS = ["id", "text", "label", "url", "collected_at"]


@dataclass
class SiteLayout:
    """CSS selectors for the two page kinds."""

    question_link: str = "a.question-link, a[href*='/soru/'], .question-list a[href]"
    next_page: str = "a[rel='next'], a.next, li.next a"
    question_text: str = (
        "[itemprop='text'], .question-text, .question-content, .soru-metni, article .question"
    )
    department: str = "[itemprop='about'], .question-department, .department, .brans"


@dataclass
class CollectorConfig:
    user_agent: str = DEFAULT_USER_AGENT
    delay: float = 2.0
    max_pages: int = 1000
    timeout: float = 20.0
    retries: int = 3
    redact: bool = False
    label: str | None = None
    layout: SiteLayout = field(default_factory=SiteLayout)


@dataclass
class _State:
    queue: list[list[str]] = field(default_factory=list)  # [url, kind, label_hint]
    seen: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


class Collector:
    def __init__(
        self,
        config: CollectorConfig,
        out: Path,
        state_path: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cfg, self.out = config, Path(out)
        self.state_path = Path(state_path) if state_path else Path(f"{out}.state.json")
        self._sleep, self._clock = sleep, clock
        self._client = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=config.timeout,
            follow_redirects=True,
            transport=transport,
        )
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._last_request: dict[str, float] = {}

    # -- politeness -------------------------------------------------------------------------
    def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            resp = self._get(origin + "/robots.txt", check_robots=False)
            if resp is None or resp.status_code >= 500:
                # server trouble: RFC 9309 says assume disallowed
                parser.disallow_all = True  # type: ignore[attr-defined]  # read()'s flag, not in typeshed
            elif resp.status_code >= 400:
                # no robots.txt: everything allowed
                parser.allow_all = True  # type: ignore[attr-defined]  # read()'s flag, not in typeshed
            else:
                parser.parse(resp.text.splitlines())
            self._robots[origin] = parser
        return self._robots[origin]

    def allowed(self, url: str) -> bool:
        robots = self._robots_for(url)
        return robots is None or robots.can_fetch(self.cfg.user_agent, url)

    def _wait_turn(self, url: str) -> None:
        host = urlsplit(url).netloc
        delay = self.cfg.delay
        robots = self._robots.get(f"{urlsplit(url).scheme}://{host}")
        if robots is not None:
            crawl_delay = robots.crawl_delay(self.cfg.user_agent)
            if crawl_delay:
                delay = max(delay, float(crawl_delay))
        last = self._last_request.get(host)
        if last is not None:
            wait = last + delay - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request[host] = self._clock()

    def _get(self, url: str, check_robots: bool = True) -> httpx.Response | None:
        if check_robots and not self.allowed(url):
            return None
        for attempt in range(self.cfg.retries + 1):
            self._wait_turn(url)
            try:
                resp = self._client.get(url)
            except httpx.HTTPError:
                if attempt == self.cfg.retries:
                    raise
                self._sleep(2.0**attempt)
                continue
            if resp.status_code in (429, 500, 502, 503, 504) and attempt < self.cfg.retries:
                retry_after = resp.headers.get("Retry-After", "")
                self._sleep(float(retry_after) if retry_after.isdigit() else 2.0**attempt)
                continue
            return resp
        return None

    # -- state ------------------------------------------------------------------------------
    def _load_state(self, start_urls: Iterable[str]) -> tuple[_State, bool]:
        if self.state_path.is_file():
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            return _State(**raw), True
        return _State(queue=[[u, "listing", ""] for u in start_urls]), False

    def _save_state(self, state: _State) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state_path)

    # -- parsing ----------------------------------------------------------------------------
    @staticmethod
    def _label_from_url(url: str) -> str:
        segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
        return segment.replace("-", " ").replace("_", " ")

    def _parse_listing(self, url: str, html: str) -> tuple[list[str], list[str]]:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(html, "html.parser")
        # href is never multi-valued (bs4 splits only class, rel, …): a str, as cast says
        questions = [
            urljoin(url, cast(str, a["href"]))
            for a in soup.select(self.cfg.layout.question_link)
            if a.get("href")
        ]
        nxt = [
            urljoin(url, cast(str, a["href"]))
            for a in soup.select(self.cfg.layout.next_page)
            if a.get("href")
        ]
        return list(dict.fromkeys(questions)), nxt[:1]

    def _parse_question(self, html: str) -> tuple[str, str]:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(html, "html.parser")
        node = soup.select_one(self.cfg.layout.question_text)
        dep = soup.select_one(self.cfg.layout.department)
        text = normalise(node.get_text(" ")) if node else ""
        return text, normalise(dep.get_text(" ")) if dep else ""

    # -- main loop --------------------------------------------------------------------------
    def run(self, start_urls: Iterable[str]) -> dict:
        state, resumed = self._load_state(start_urls)
        stats = {
            "pages_fetched": 0,
            "questions_written": 0,
            "skipped_robots": 0,
            "skipped_no_text": 0,
            "skipped_unknown_label": 0,
            "http_errors": 0,
            **state.stats,
        }
        seen = set(state.seen)
        new_file = not self.out.exists() or self.out.stat().st_size == 0
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fetched_now = 0
        with self.out.open("a", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            if new_file:
                writer.writeheader()
            while state.queue and fetched_now < self.cfg.max_pages:
                url, kind, hint = state.queue.pop(0)
                if url in seen:
                    continue
                seen.add(url)
                state.seen.append(url)
                if not self.allowed(url):
                    stats["skipped_robots"] += 1
                    continue
                resp = self._get(url)
                fetched_now += 1
                stats["pages_fetched"] += 1
                if resp is None or resp.status_code != 200:
                    stats["http_errors"] += 1
                elif kind == "listing":
                    hint = hint or self._label_from_url(url)
                    questions, nxt = self._parse_listing(url, resp.text)
                    state.queue.extend([q, "question", hint] for q in questions if q not in seen)
                    state.queue.extend([n, "listing", hint] for n in nxt if n not in seen)
                else:
                    row = self._question_row(url, resp.text, hint, stats)
                    if row:
                        writer.writerow(row)
                        fh.flush()
                        stats["questions_written"] += 1
                state.stats = stats
                self._save_state(state)
        self._save_state(state)
        return {
            **stats,
            "resumed": resumed,
            "queue_left": len(state.queue),
            "out": str(self.out),
            "state": str(self.state_path),
        }

    def _question_row(self, url: str, html: str, hint: str, stats: dict) -> dict | None:
        text, page_dep = self._parse_question(html)
        if not text:
            stats["skipped_no_text"] += 1
            return None
        label = None
        for candidate in (self.cfg.label, page_dep, hint):
            if candidate and (dep_id := departments.resolve(candidate)):
                label = departments.get(dep_id).name_tr
                break
        if label is None:
            stats["skipped_unknown_label"] += 1
            return None
        if self.cfg.redact:
            text = redact_pii(text)
        return {
            "id": hashlib.sha1(url.encode()).hexdigest()[:16],
            "text": text,
            "label": label,
            "url": url,
            "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def close(self) -> None:
        self._client.close()
