"""khabar feeds without servers: config, HTML to text, item -> message, state, and polling local files.

The Kafka producer is faked at its one seam (``send``/``flush`` returning futures); the real one is
exercised in tests/integration/test_feeds_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import feedparser
import pytest

from khabar import feeds
from khabar.feeds import (
    FeedConfigError,
    FeedsConfig,
    FeedSpec,
    FeedState,
    FeedStateError,
    ItemError,
    canonical_url,
    entry_to_message,
    html_to_text,
    load_feeds_config,
    parse_feeds_config,
)

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    """Records what was sent; ``fail`` names message keys whose acknowledgement fails."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.fail = fail or set()
        self.flushed = 0

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> _Future:
        message = json.loads(value)
        self.sent.append((topic, key, message))
        return _Future(RuntimeError("broker said no") if message["id"] in self.fail else None)

    def flush(self) -> None:
        self.flushed += 1


def _parsed(name: str) -> Any:
    return feedparser.parse((FEEDS / name).read_bytes())


# --- configuration -----------------------------------------------------------------------------------

def test_toml_config_resolves_relative_paths_and_reads_every_key(tmp_path: Path) -> None:
    conf = tmp_path / "feeds.toml"
    conf.write_text('interval = 60\ntimeout = 5\n'
                    '[[feeds]]\nurl = "http://127.0.0.1:8000/a.rss"\nsource = "a"\nlanguage = "fa"\n'
                    '[[feeds]]\nurl = "local/b.atom"\nsource = "b"\nenabled = false\ntimeout = 2.5\n', "utf-8")
    cfg = load_feeds_config(conf)
    assert cfg.interval == 60 and cfg.timeout == 5
    assert cfg.feeds[0] == FeedSpec("http://127.0.0.1:8000/a.rss", "a", "fa")
    assert cfg.feeds[1].url == (tmp_path / "local" / "b.atom").as_uri()
    assert cfg.feeds[1].is_file and not cfg.feeds[1].enabled and cfg.feeds[1].timeout == 2.5
    with pytest.raises(AttributeError):
        cfg.feeds[0].source = "x"  # type: ignore[misc]


def test_yaml_config_gives_the_same_specs(tmp_path: Path) -> None:
    conf = tmp_path / "feeds.yaml"
    conf.write_text("feeds:\n  - url: http://127.0.0.1:8000/a.rss\n    source: a\n    language: fa\n", "utf-8")
    assert load_feeds_config(conf).feeds == (FeedSpec("http://127.0.0.1:8000/a.rss", "a", "fa"),)


@pytest.mark.parametrize(("data", "message"), [
    ({"feeds": [{"url": "http://x/a", "source": "a", "lang": "fa"}]}, "unknown key 'lang'"),
    ({"feeds": [{"url": "http://x/a", "source": "a"}], "intervall": 5}, "unknown key 'intervall'"),
    ({"feeds": [{"url": "http://x/a"}]}, "feeds[0]: 'source' is required"),
    ({"feeds": []}, "non-empty list"),
    ({"feeds": [{"url": "ftp://x/a", "source": "a"}]}, "use http://"),
    ({"feeds": [{"url": "http://x/a", "source": "a", "language": "Persian!"}]}, "not a language code"),
    ({"feeds": [{"url": "http://x/a", "source": "a"}, {"url": "http://x/a", "source": "b"}]}, "listed twice"),
    ({"feeds": [{"url": "http://x/a", "source": "a"}], "interval": "often"}, "must be a number"),
    ({"feeds": [{"url": "http://x/a", "source": "a"}], "interval": 0}, "interval must be positive"),
    ({"feeds": [{"url": "http://x/a", "source": "a", "enabled": "yes"}]}, "enabled must be true or false"),
    (["http://x/a"], "expected a table"),
])
def test_bad_configs_are_rejected_naming_the_problem(data: Any, message: str) -> None:
    with pytest.raises(FeedConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_feeds_config(data)


def test_unreadable_or_unknown_config_files(tmp_path: Path) -> None:
    with pytest.raises(FeedConfigError, match="cannot read feeds file"):
        load_feeds_config(tmp_path / "missing.toml")
    (tmp_path / "f.ini").write_text("[feeds]\n", "utf-8")
    with pytest.raises(FeedConfigError, match=r"\.toml, \.yaml"):
        load_feeds_config(tmp_path / "f.ini")
    (tmp_path / "f.toml").write_text("feeds = [\n", "utf-8")
    with pytest.raises(FeedConfigError, match=r"f\.toml"):
        load_feeds_config(tmp_path / "f.toml")


def test_example_config_in_deploy_is_valid() -> None:
    cfg = load_feeds_config(Path(__file__).resolve().parents[2] / "deploy" / "feeds.example.toml")
    assert cfg.feeds and all(spec.source for spec in cfg.feeds)


# --- HTML to text ------------------------------------------------------------------------------------------

def test_light_html_to_text_keeps_paragraphs_and_drops_markup() -> None:
    markup = ('<p>کرملین دیدار را <b>تکذیب</b> کرد.</p><p>گفت&nbsp;و&zwnj;گو &amp; «خبر»<br/>سطر دوم</p>'
              '<script>var x = "<p>no</p>";</script><style>p{}</style><ul><li>یک</li><li>دو</li></ul>')
    assert html_to_text(markup) == "کرملین دیدار را تکذیب کرد.\n\nگفت و\u200cگو & «خبر»\nسطر دوم\n\nیک\nدو"


def test_light_html_to_text_on_plain_text_decodes_entities_only() -> None:
    assert html_to_text("  قال &quot;لا&quot;   اليوم \n\n\n\n غداً ") == 'قال "لا" اليوم\n\nغداً'


def test_full_html_to_text_drops_share_buttons_and_scripts() -> None:
    paragraph = "قالت ثلاثة مصادر الجمعة إن الجنرال قاسم سليماني وهو قائد كبير في الحرس الثوري زار موسكو. " * 3
    markup = (f'<div class="article"><p>{paragraph}</p><p>{paragraph}</p></div>'
              '<div class="share"><a href="https://t.me/share">Telegram</a></div><script>track();</script>')
    text = feeds.full_html_to_text(markup)
    assert text.split("\n\n") == [paragraph.strip(), paragraph.strip()]
    assert "track" not in text


def test_full_html_to_text_falls_back_when_trafilatura_finds_nothing() -> None:
    assert feeds.full_html_to_text("<span>کوتاه</span>") == "کوتاه"


# --- items to messages ---------------------------------------------------------------------------------------

def test_canonical_url_drops_tracking_fragment_and_default_port() -> None:
    assert canonical_url("HTTP://News.Example.TEST:80/a/b?id=3&utm_source=rss&fbclid=x#top") == \
        "http://news.example.test/a/b?id=3"
    assert canonical_url("https://x.test:8443") == "https://x.test:8443/"


def test_every_rss_fixture_item_becomes_a_message_with_a_unique_deterministic_id() -> None:
    parsed = _parsed("news.rss")
    spec = FeedSpec("http://127.0.0.1/news.rss", "testnews", "ar")
    messages = [entry_to_message(e, spec, parsed.feed) for e in parsed.entries]
    assert len(messages) == 50
    assert len({m["id"] for m in messages}) == 50
    assert messages == [entry_to_message(e, spec, parsed.feed) for e in parsed.entries]
    for m in messages:
        assert m["id"].startswith("testnews:") and len(m["id"]) == len("testnews:") + 40
        assert m["text"].strip() and "<" not in m["text"] and "&amp;" not in m["text"]
        assert m["title"] and m["url"].startswith("http://news.example.test/")
        assert m["source"] == "testnews" and m["language"] == "ar"
    by_url = {m["url"].split("?")[0]: m for m in messages}
    assert "published_at" not in by_url["http://news.example.test/fa/story/1013"]  # the item without a date
    assert by_url["http://news.example.test/fa/story/1000"]["published_at"] == "2026-11-01T06:00:00+00:00"
    content_item = by_url["http://news.example.test/fa/story/1048"]
    assert content_item["text_from"] == "content" and "Telegram" not in content_item["text"]
    assert content_item["text"].count("\n\n") >= 2


def test_id_comes_from_guid_else_canonical_link() -> None:
    spec = FeedSpec("http://x/f", "src")
    with_guid = {"id": " urn:a:1 ", "link": "http://x/1", "title": "t", "summary": "s"}
    assert entry_to_message(with_guid, spec)["id"] == feeds.message_id("src", "guid:urn:a:1")
    # Without a guid, the same story reached through a tracking link has the same id as the clean link.
    tracked = {"link": "http://X/1?utm_source=rss#c", "title": "t", "summary": "s"}
    clean = {"link": "http://x/1", "title": "t2", "summary": "other"}
    assert entry_to_message(tracked, spec)["id"] == entry_to_message(clean, spec)["id"]
    assert entry_to_message(tracked, FeedSpec("http://x/f", "other"))["id"] != entry_to_message(tracked, spec)["id"]


def test_rss_item_without_guid_uses_its_link() -> None:
    parsed = _parsed("news.rss")
    spec = FeedSpec("http://127.0.0.1/news.rss", "testnews")
    entry = next(e for e in parsed.entries if "utm_source" in e.link)
    assert "id" not in entry
    assert entry_to_message(entry, spec)["id"] == feeds.message_id(
        "testnews", "link:" + canonical_url(entry.link.split("?")[0]))


def test_atom_entries_take_language_from_xml_lang_and_text_from_content() -> None:
    parsed = _parsed("news.atom")
    spec = FeedSpec("http://127.0.0.1/news.atom", "atomnews")
    messages = [entry_to_message(e, spec, parsed.feed) for e in parsed.entries]
    assert [m["language"] for m in messages] == ["fa", "ar"] * 6
    assert all(m["text_from"] == "content" and "Twitter" not in m["text"] for m in messages)
    assert messages[1]["published_at"] == "2026-11-04T06:37:00+00:00"
    assert messages[0]["guid"] == "tag:atom.example.test,2026:fa-0"
    # The configured language wins over the feed's own.
    assert entry_to_message(parsed.entries[0], FeedSpec("http://x/f", "s", "ar"))["language"] == "ar"


def test_headline_only_item_uses_its_title_and_an_empty_item_is_an_error() -> None:
    spec = FeedSpec("http://x/f", "s")
    message = entry_to_message({"title": "<b>عاجل</b>: انفجار", "title_detail": {"type": "text/html"},
                                "link": "http://x/1"}, spec)
    assert message["title"] == "عاجل: انفجار" and message["text"] == "عاجل: انفجار"
    assert message["text_from"] == "title"
    with pytest.raises(ItemError):
        entry_to_message({"link": "http://x/2", "summary": "  "}, spec)
    with pytest.raises(ItemError):
        entry_to_message({"summary": "text but no way to identify it"}, spec)


def test_unparsed_date_is_passed_on_for_the_enrichment() -> None:
    message = entry_to_message({"id": "g", "title": "t", "summary": "s", "published": "۱۴۰۵/۰۸/۱۰"},
                               FeedSpec("http://x/f", "s"))
    assert message["published_at"] == "۱۴۰۵/۰۸/۱۰"


# --- state ------------------------------------------------------------------------------------------------------

def test_state_roundtrip_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state = FeedState.load(path)
    assert state.feeds == {}
    state.record_sent("http://x/f", ["a", "b"], when="2026-01-01T00:00:00+00:00")
    state.record_poll("http://x/f", etag='"e1"', modified="Sun, 01 Nov 2026 06:00:00 GMT", update_validators=True)
    state.save()
    again = FeedState.load(path)
    assert again.is_seen("http://x/f", "a") and not again.is_seen("http://x/f", "c")
    assert again.validators("http://x/f") == ('"e1"', "Sun, 01 Nov 2026 06:00:00 GMT")
    assert not list(path.parent.glob("*.tmp*"))
    path.write_text("{not json", "utf-8")
    with pytest.raises(FeedStateError, match="move it away"):
        FeedState.load(path)
    path.write_text('{"version": 99, "feeds": {}}', "utf-8")
    with pytest.raises(FeedStateError, match="not a khabar feeds state"):
        FeedState.load(path)


def test_pruning_forgets_the_oldest_ids_but_never_those_still_in_the_feed() -> None:
    state = FeedState()
    for day in range(1, 10):
        state.record_sent("u", [f"id{day}"], when=f"2026-01-0{day}")
    state.record_sent("u", ["id10"], current=["id1", "id10"], when="2026-01-10", max_seen=4)
    assert set(state.feeds["u"]["seen"]) == {"id1", "id8", "id9", "id10"}


def test_state_lock_refuses_a_second_poller(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with feeds.state_lock(path), pytest.raises(FeedStateError, match="another"), feeds.state_lock(path):
        pass
    with feeds.state_lock(path):  # released after the first one ended
        pass


def test_default_state_path_is_per_topic() -> None:
    path = feeds.default_state_path("khabar.documents", {"KHABAR_HOME": "/srv/kh"})
    assert path == Path("/srv/kh/feeds-state/khabar.documents.json")


# --- polling local files with a fake producer ---------------------------------------------------------------------

def _local(tmp_path: Path, name: str, source: str = "local") -> FeedSpec:
    target = tmp_path / f"{source}.xml"
    shutil.copyfile(FEEDS / name, target)
    return FeedSpec(target.as_uri(), source)


def test_poll_sends_each_item_once_across_restarts_and_only_new_ones_later(tmp_path: Path) -> None:
    spec = _local(tmp_path, "news.rss")
    state_path = tmp_path / "state.json"
    prod = FakeProducer()
    [report] = feeds.poll_all(FeedsConfig((spec,)), FeedState.load(state_path), prod, "topic")
    assert (report.status, report.items, report.new, report.sent) == ("ok", 50, 50, 50)
    assert {t for t, _, _ in prod.sent} == {"topic"}
    assert all(key == m["id"].encode() for _, key, m in prod.sent)

    # A new process reads the state from disk: the unchanged file is not even parsed again.
    state = FeedState.load(state_path)
    assert feeds.poll_feed(spec, state, prod, "topic").status == "not-modified"

    # Touched but unchanged: parsed again, nothing new.
    os.utime(Path(spec.url[len("file://"):]), ns=(1, 1))
    report = feeds.poll_feed(spec, state, prod, "topic")
    assert (report.status, report.items, report.sent) == ("ok", 50, 0)

    # The feed later: 5 new items (and one retitled old item, same guid: not sent again).
    shutil.copyfile(FEEDS / "news-updated.rss", spec.url[len("file://"):])
    report = feeds.poll_feed(spec, state, prod, "topic")
    assert (report.items, report.new, report.sent) == (55, 5, 5)
    assert len(prod.sent) == 55 and len({m["id"] for _, _, m in prod.sent}) == 55


def test_unacknowledged_items_are_not_remembered_and_are_sent_again(tmp_path: Path) -> None:
    spec = _local(tmp_path, "news.atom")
    first_ids = [entry_to_message(e, spec)["id"] for e in _parsed("news.atom").entries]
    state = FeedState()
    prod = FakeProducer(fail=set(first_ids[:3]))
    report = feeds.poll_feed(spec, state, prod, "topic")
    assert (report.status, report.new, report.sent) == ("error", 12, 9)
    assert "3 of 12 message(s) not acknowledged" in (report.error or "")
    assert state.validators(spec.url) == (None, None)  # so the next poll does not get a 304
    retry = FakeProducer()
    report = feeds.poll_feed(spec, state, retry, "topic")
    assert (report.status, report.sent) == ("ok", 3)
    assert [m["id"] for _, _, m in retry.sent] == first_ids[:3]
    assert feeds.poll_feed(spec, state, retry, "topic").status == "not-modified"


def test_one_broken_feed_does_not_stop_the_others(tmp_path: Path) -> None:
    good = _local(tmp_path, "news.atom", "good")
    broken = _local(tmp_path, "broken.xml", "broken")
    missing = FeedSpec((tmp_path / "missing.rss").as_uri(), "missing")
    html_page = tmp_path / "page.xml"
    html_page.write_text("<html><body><h1>503 Service Unavailable</h1></body></html>", "utf-8")
    not_a_feed = FeedSpec(html_page.as_uri(), "page")
    disabled = FeedSpec((tmp_path / "nothing.rss").as_uri(), "off", enabled=False)
    state = FeedState(tmp_path / "state.json")
    prod = FakeProducer()
    reports = feeds.poll_all(FeedsConfig((broken, missing, not_a_feed, good, disabled)), state, prod, "t")
    by_source = {r.source: r for r in reports}
    assert by_source["broken"].status == "error" and "malformed" in (by_source["broken"].error or "")
    assert by_source["missing"].status == "error" and "cannot read" in (by_source["missing"].error or "")
    assert by_source["page"].status == "error" and "not an RSS or Atom feed" in (by_source["page"].error or "")
    assert (by_source["good"].status, by_source["good"].sent) == ("ok", 12)
    assert by_source["off"].status == "disabled"
    assert "FAILED: malformed" in by_source["broken"].line()
    saved = json.loads((tmp_path / "state.json").read_text("utf-8"))
    assert "malformed" in saved["feeds"][broken.url]["last_error"]
    assert len(saved["feeds"][good.url]["seen"]) == 12


def test_a_feed_that_repeats_an_item_sends_it_once(tmp_path: Path) -> None:
    text = (FEEDS / "news.rss").read_text("utf-8")
    first = text[text.index("<item>"): text.index("</item>") + len("</item>")]
    doubled = tmp_path / "doubled.rss"
    doubled.write_text(text.replace(first, first + "\n" + first, 1), "utf-8")
    report = feeds.poll_feed(FeedSpec(doubled.as_uri(), "d"), FeedState(), FakeProducer(), "t")
    assert (report.items, report.new, report.sent) == (51, 50, 50)


def test_main_reports_configuration_errors_without_touching_kafka(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "feeds.toml"
    conf.write_text('[[feeds]]\nurl = "http://x/a"\nsource = "a"\ncolour = "red"\n', "utf-8")
    assert feeds.main([str(conf), "--once", "--state", str(tmp_path / "s.json")]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        feeds.main(["--help"])
    assert exc.value.code == 0
