"""The collector against HTML pages served on localhost by a real HTTP server."""

import csv
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medai.triage.collect import Collector, CollectorConfig

QUESTIONS = {
    "/soru/1": ("Kulağımda iki haftadır çınlama var, Ayşe hanım ne yapmalıyım?", "KBB"),
    "/soru/2": ("Boğazım sürekli ağrıyor ve bademciklerim şiş", "Kulak Burun Boğaz"),
    "/soru/3": ("Burnum tıkalı, geniz akıntısı var", ""),  # department from the listing URL
    "/soru/4": ("   ", "KBB"),  # empty question: counted, not written
    "/private/soru/5": ("robots.txt bunu yasaklıyor", "KBB"),
}


def listing(page: int) -> str:
    links = {1: ["/soru/1", "/soru/2", "/private/soru/5"], 2: ["/soru/3", "/soru/4"]}[page]
    nxt = (
        '<a rel="next" href="/blog/sorular/kulak-burun-bogaz?sayfa=2">Sonraki</a>'
        if page == 1
        else ""
    )
    items = "".join(f'<li><a class="question-link" href="{u}">soru</a></li>' for u in links)
    return f"<html><body><ul class='question-list'>{items}</ul>{nxt}</body></html>"


def question(text: str, dep: str) -> str:
    dep_html = f'<span class="department">{dep}</span>' if dep else ""
    return (
        f"<html><body><article>{dep_html}<div itemprop='text'>{text}</div>"
        f"<div class='answer'>Doktor yanıtı</div></article></body></html>"
    )


class _Handler(BaseHTTPRequestHandler):
    log: typing.ClassVar[list] = []

    def do_GET(self):
        self.log.append((self.path, self.headers.get("User-Agent")))
        if self.path == "/robots.txt":
            body, code = "User-agent: *\nDisallow: /private/\n", 200
        elif self.path.startswith("/blog/sorular/kulak-burun-bogaz"):
            body, code = listing(2 if "sayfa=2" in self.path else 1), 200
        elif self.path in QUESTIONS:
            body, code = question(*QUESTIONS[self.path]), 200
        else:
            body, code = "not found", 404
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def site():
    _Handler.log = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.log
    server.shutdown()


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_collects_politely_and_writes_trainer_csv(site, tmp_path):
    base, log = site
    out = tmp_path / "out.csv"
    fake = FakeClock()
    cfg = CollectorConfig(delay=1.5, redact=True, user_agent="medai-test/1.0 (+ops@hospital)")
    stats = Collector(cfg, out, sleep=fake.sleep, clock=fake.clock).run(
        [f"{base}/blog/sorular/kulak-burun-bogaz"]
    )
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["url"].removeprefix(base) for r in rows] == ["/soru/1", "/soru/2", "/soru/3"]
    assert {r["label"] for r in rows} == {"Kulak Burun Boğaz"}
    assert "[İSİM] hanım" in rows[0]["text"] and "Doktor yanıtı" not in rows[0]["text"]
    assert stats["skipped_robots"] == 1 and stats["skipped_no_text"] == 1
    assert all(path != "/private/soru/5" for path, _ in log)
    assert {ua for _, ua in log} == {"medai-test/1.0 (+ops@hospital)"}
    # one request per page plus robots.txt, and every gap honoured the delay
    assert len(fake.sleeps) == len(log) - 1 and all(abs(s - 1.5) < 1e-9 for s in fake.sleeps)

    from medai.triage.data import load_complaints

    data = load_complaints(out)
    assert data.report.rows_kept == 3 and set(data.labels) == {"ent"}


def test_resume_does_not_refetch(site, tmp_path):
    base, log = site
    out = tmp_path / "out.csv"
    fake = FakeClock()
    first = Collector(
        CollectorConfig(delay=0, max_pages=2), out, sleep=fake.sleep, clock=fake.clock
    ).run([f"{base}/blog/sorular/kulak-burun-bogaz"])
    assert first["resumed"] is False and first["queue_left"] > 0
    fetched_first = [p for p, _ in log if p != "/robots.txt"]
    second = Collector(CollectorConfig(delay=0), out, sleep=fake.sleep, clock=fake.clock).run(
        [f"{base}/blog/sorular/kulak-burun-bogaz"]
    )
    assert second["resumed"] is True and second["queue_left"] == 0
    fetched = [p for p, _ in log if p != "/robots.txt"]
    assert len(fetched) == len(set(fetched)), "a page was fetched twice"
    assert set(fetched_first) < set(fetched)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 3 and len({r["url"] for r in rows}) == 3


def test_crawl_delay_from_robots_wins(tmp_path):
    import httpx

    def handler(request):
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nCrawl-delay: 5\n")
        return httpx.Response(200, text="<html></html>")

    fake = FakeClock()
    Collector(
        CollectorConfig(delay=1),
        tmp_path / "o.csv",
        sleep=fake.sleep,
        clock=fake.clock,
        transport=httpx.MockTransport(handler),
    ).run(["http://example.test/a", "http://example.test/b"])
    assert fake.sleeps and min(fake.sleeps) >= 5


def test_server_errors_are_retried_then_counted(tmp_path):
    import httpx

    calls = []

    def handler(request):
        calls.append(request.url.path)
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(503, headers={"Retry-After": "3"})

    fake = FakeClock()
    stats = Collector(
        CollectorConfig(delay=0, retries=2),
        tmp_path / "o.csv",
        sleep=fake.sleep,
        clock=fake.clock,
        transport=httpx.MockTransport(handler),
    ).run(["http://example.test/list"])
    assert calls.count("/list") == 3 and stats["http_errors"] == 1
    assert 3.0 in fake.sleeps
