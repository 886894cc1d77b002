"""The dashboard in headless Chromium against the real stack, with the seed scenario replayed.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (the project's setup installs
them) and Selenium from the ``test`` extra. Selenium's driver manager is never used: the
driver and browser paths are given explicitly, so nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from aggregations.events import UsageEvent
from aggregations.rankings import Ranked, rank_changes
from aggregations.scenario import Scenario
from aggregations.weeks import week_start_ms
from streams.dev.replay import produce_scenario, wait_for_pipeline
from streams.http.api import build_api_app
from streams.sdk.producer import UsageProducer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.processes import OUTPUT, WorkerProcess

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError("selenium is missing: pip install -e '.[test]'") from exc

StartWorker = Callable[..., WorkerProcess]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SEED_WEEK = "2026-W47"
WAIT_S = 60
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1300",
]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven by the system chromedriver, with a throwaway profile."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install the Debian packages with"
            " `apt-get install -y chromium chromium-driver` (the project's setup does this)"
        )
    with tempfile.TemporaryDirectory(prefix="tokenboard-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    """The API app served on a free local port inside the test's event loop."""
    runner = web.AppRunner(build_api_app(settings), access_log=None)
    await runner.setup()
    # Port 0: the kernel picks a free port as it binds; the runner says which.
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Poll ``condition`` in a worker thread, so that the in-loop server keeps serving."""
    # A refresh can replace an element between finding it and reading it: just poll again.
    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    return await asyncio.to_thread(wait.until, condition, f"dashboard never showed {what}")


def by_testid(driver: WebDriver, name: str) -> Any:
    """The element with ``data-testid=name``."""
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def row_texts(driver: WebDriver, name: str) -> list[str]:
    """The text of every element with ``data-testid=name``, in page order."""
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')]


async def publish_ranking_change(settings: Settings, member: str) -> dict[str, Any]:
    """Publish a new-leader event, shaped by rank_changes, straight to the rankings topic."""
    before = [Ranked(1, "deepseek/deepseek-v4-flash", 3_430_000_000_000)]
    after = [Ranked(1, member, 4_000_000_000_000), *[Ranked(2, r.member, r.tokens) for r in before]]
    events = rank_changes("model", SEED_WEEK, before, after, 10, "live")
    event = next(e for e in events if e["kind"] == "new_leader")
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.rankings_topic, orjson.dumps(event), key=event["id"].encode()
        )
    finally:
        await producer.stop()
    return event


async def send_app_events(settings: Settings) -> None:
    """Four small events of the seed week with apps (3M tokens for support-bot, 1M for
    coder): the week's total still reads 28.9T."""
    start = week_start_ms(SEED_WEEK) + 86_400_000
    events = [
        UsageEvent(f"app-{i}", start + i * 1000, "deepseek/deepseek-v4-flash", 750_000, 250_000,
                   app="coder" if i == 3 else "support-bot")
        for i in range(4)
    ]  # fmt: skip
    async with UsageProducer(settings) as producer:
        await producer.send_many(events)


async def send_priced_app_events(settings: Settings) -> None:
    """Two GPT-5.1 events of support-bot in the seed week, half their prompt cached: at its
    list price ($1.25, $10 and $0.125 per million) each costs exactly $2.55."""
    start = week_start_ms(SEED_WEEK) + 2 * 86_400_000
    events = [
        UsageEvent(f"priced-app-{i}", start + i * 1000, "openai/gpt-5.1", 800_000, 200_000,
                   cached_tokens=400_000, app="support-bot")
        for i in range(2)
    ]  # fmt: skip
    async with UsageProducer(settings) as producer:
        await producer.send_many(events)


async def test_dashboard_shows_the_seed_week_and_live_changes(
    settings: Settings,
    start_worker: StartWorker,
    seed_scenario: Scenario,
    api_url: str,
    browser: WebDriver,
) -> None:
    """The page shows the seed week's #1, the country chart, a new change, the app board and,
    with the Spend toggle, the models and apps ranked by spend, without reload."""
    await ensure_topics(settings)
    start_worker("w1")
    await produce_scenario(settings, seed_scenario, 5, show=False)
    await wait_for_pipeline(settings, seed_scenario, timeout_s=120, show=False)

    await asyncio.to_thread(browser.get, api_url + "/")
    # Ranks, moves and the growth streak come from the ranker, a few ticks after the counts:
    # wait for the page to show them all (it refreshes itself) before checking every figure.
    # The text, not the element: the page re-renders its rows on every refresh.
    first_row = await wait_until(
        browser,
        lambda d: (
            (rows := d.find_elements(By.CSS_SELECTOR, '[data-testid="model-row"]'))
            and "DeepSeek-V4-Flash" in (text := rows[0].text)
            and "↑1" in text
            and by_testid(d, "growth-streak").text == "5 weeks"
            and text
        ),
        "DeepSeek-V4-Flash as #1, up one, and a 5-week streak",
    )
    assert "3.43T" in first_row and "↑1" in first_row
    assert by_testid(browser, "current-week").text == SEED_WEEK
    assert by_testid(browser, "global-total").text == "28.9T"
    assert by_testid(browser, "growth-streak").text == "5 weeks"

    canvas = by_testid(browser, "country-chart")
    assert canvas.size["width"] > 0 and canvas.size["height"] > 0
    datasets = await wait_until(
        browser,
        lambda d: d.execute_script(
            "const c = Chart.getChart(arguments[0]);"
            " return c && c.data.labels.length ? c.data.datasets.map(s => s.label) : null;",
            canvas,
        ),
        "a country chart with data",
    )
    assert datasets[0] == "China"
    assert "China" in by_testid(browser, "country-legend").text

    # Proves "without reload": a page reload would drop this marker.
    browser.execute_script("window.tokenboardTestMarker = 'same page';")
    await wait_until(
        browser, lambda d: by_testid(d, "feed-state").get_attribute("data-state") == "live", "live"
    )
    member = f"test/new-leader-{uuid.uuid4().hex[:8]}"
    await publish_ranking_change(settings, member)
    item = await wait_until(
        browser,
        lambda d: next(
            (text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="feed-item"]')
             if member in (text := e.text)),
            None,
        ),
        f"the ranking change of {member}",
    )  # fmt: skip
    assert "new #1" in item
    assert browser.execute_script("return window.tokenboardTestMarker;") == "same page"

    # The seed names no app: the app board is empty, its 28.9T counted under "(no app)".
    await wait_until(
        browser,
        lambda d: "(no app) 28.9T not ranked" in d.find_element(By.ID, "apps-caption").text,
        "the seed's tokens under (no app)",
    )
    assert "No app traffic yet" in by_testid(browser, "top-apps").text
    await send_app_events(settings)
    rows = await wait_until(
        browser,
        lambda d: (
            [r.text for r in d.find_elements(By.CSS_SELECTOR, '[data-testid="app-row"]')]
            if len(d.find_elements(By.CSS_SELECTOR, '[data-testid="app-row"]')) == 2
            else None
        ),
        "the app board with support-bot and coder",
    )
    assert rows[0].split()[:3] == ["1", "new", "support-bot"] and "3M" in rows[0]
    assert rows[1].split()[:3] == ["2", "new", "coder"] and "1M" in rows[1]
    assert "2 apps" in browser.find_element(By.ID, "apps-caption").text
    link = by_testid(browser, "apps-export-csv").get_attribute("href")
    assert link.endswith(f"/v1/export/app?format=csv&week={SEED_WEEK}")
    assert browser.execute_script("return window.tokenboardTestMarker;") == "same page"

    OUTPUT.mkdir(exist_ok=True)
    assert await asyncio.to_thread(browser.save_screenshot, str(OUTPUT / "dashboard.png"))
    browser.execute_script("document.querySelector('section.apps').scrollIntoView();")
    assert await asyncio.to_thread(browser.save_screenshot, str(OUTPUT / "dashboard-apps.png"))

    # Spend: the toggle ranks models and apps by spend (the seed prices only its US leaders) -
    await wait_until(
        browser, lambda d: by_testid(d, "global-spend").text == "≥$16.2M", "the week's spend"
    )
    await send_priced_app_events(settings)
    by_testid(browser, "measure-spend").click()
    spend_rows = await wait_until(
        browser,
        lambda d: (
            (rows := row_texts(d, "model-row"))
            and len(rows) == 4
            and by_testid(d, "models-amount").text.lower() == "spend"
            and rows
        ),
        "the models ranked by spend",
    )
    assert "Claude Sonnet 4.6" in spend_rows[0] and "$11.4M" in spend_rows[0]
    assert "GPT-5.1" in spend_rows[1] and "$3.09M" in spend_rows[1]
    assert "Gemini 3 Flash" in spend_rows[2] and "Grok 4.1 Fast" in spend_rows[3]
    assert not any("DeepSeek" in row for row in spend_rows)  # no price: not ranked by spend
    caption = browser.find_element(By.ID, "models-caption").text
    assert "by spend" in caption and "≥$16.2M" in caption and "72 models without a price" in caption
    assert by_testid(browser, "measure-spend").get_attribute("aria-pressed") == "true"
    # support-bot spent $5.10 on GPT-5.1 (and more tokens without a price: a lower bound);
    # coder's tokens all had no price, so it is on no spend board.
    app_rows = await wait_until(
        browser,
        lambda d: (
            row_texts(d, "app-row") if by_testid(d, "apps-amount").text.lower() == "spend" else None
        ),
        "the apps ranked by spend",
    )
    assert len(app_rows) == 1
    assert app_rows[0].split()[:3] == ["1", "new", "support-bot"] and "≥$5.1" in app_rows[0]
    assert "1 apps without a price" in browser.find_element(By.ID, "apps-caption").text
    browser.execute_script("window.scrollTo(0, 0);")
    assert await asyncio.to_thread(browser.save_screenshot, str(OUTPUT / "dashboard-spend.png"))
    # Back to tokens: the token board as before.
    by_testid(browser, "measure-tokens").click()
    await wait_until(
        browser,
        lambda d: (
            (rows := d.find_elements(By.CSS_SELECTOR, '[data-testid="model-row"]'))
            and "DeepSeek-V4-Flash" in rows[0].text
            and by_testid(d, "models-amount").text.lower() == "tokens"
        ),
        "the models ranked by tokens again",
    )
    assert browser.execute_script("return window.tokenboardTestMarker;") == "same page"
