// tokenboard dashboard: polls the read API every 5 s and follows /v1/events/stream live.
// No build step and no framework: the page must work from the wheel's static folder alone.
"use strict";

const REFRESH_MS = 5000;
const FEED_MAX = 60;
const CHART_COUNTRIES = 8; // the rest is stacked as "Other" to keep the chart readable
const PALETTE = [
  "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#94a3b8",
];
const UNITS = [[10n ** 12n, "T"], [10n ** 9n, "B"], [10n ** 6n, "M"], [10n ** 3n, "K"]];
const USD_UNITS = [[1n, ""], [10n ** 3n, "k"], [10n ** 6n, "M"], [10n ** 9n, "B"], [10n ** 12n, "T"]];
const MICRO = 1000000n;

// measure: what the boards are ranked by, "tokens" or "spend" (the toggle in the header).
const state = { week: "current", measure: "tokens", chart: null, seen: new Set(), refreshing: false, again: false };

// Formatting (mirrors aggregations/report.py) -------------------------------------------
// BigInt: token counts times 1000 exceed the integers a double holds exactly.
function formatTokens(value) {
  let n = BigInt(value);
  const sign = n < 0n ? "-" : "";
  if (n < 0n) n = -n;
  for (let i = 0; i < UNITS.length; i++) {
    let [unit, suffix] = UNITS[i];
    if (n < unit) continue;
    let thousandths = (n * 1000n + unit / 2n) / unit;
    if (thousandths >= 1000000n && i > 0) {
      [unit, suffix] = UNITS[i - 1];
      thousandths = (n * 1000n + unit / 2n) / unit;
    }
    const whole = thousandths / 1000n;
    const digits = String(thousandths % 1000n).padStart(3, "0").replace(/0+$/, "");
    return `${sign}${whole}${digits ? "." + digits : ""}${suffix}`;
  }
  return `${sign}${n}`;
}

// Micro-dollars, three significant digits (mirrors aggregations/prices.py format_usd).
function formatUsd(value) {
  let n = BigInt(value);
  const sign = n < 0n ? "-" : "";
  if (n < 0n) n = -n;
  if (n === 0n) return "$0";
  if (n < 10000n) return `${sign}<$0.01`;
  const cents = (n + 5000n) / 10000n;
  if (cents < 100n) return `${sign}$0.${String(cents).padStart(2, "0")}`;
  for (let i = 0; i < USD_UNITS.length; i++) {
    const unit = USD_UNITS[i][0] * MICRO;
    const bigger = i + 1 < USD_UNITS.length ? USD_UNITS[i + 1][0] * MICRO : null;
    if (bigger !== null && n >= bigger) continue;
    let scaled = 0n;
    for (const decimals of [2n, 1n, 0n]) {
      const step = unit / 10n ** decimals;
      scaled = (n + step / 2n) / step;
      if (scaled < 1000n) {
        const whole = scaled / 10n ** decimals;
        const fraction = String(scaled % 10n ** decimals).padStart(Number(decimals), "0");
        const text = decimals ? `${whole}.${fraction}`.replace(/0+$/, "").replace(/\.$/, "") : `${whole}`;
        return `${sign}$${text}${USD_UNITS[i][1]}`;
      }
    }
    if (bigger !== null) return `${sign}$1${USD_UNITS[i + 1][1]}`;
    return `${sign}$${scaled}${USD_UNITS[i][1]}`;
  }
  return `${sign}$${n}`;
}

// A cost as the API gives it: null is unknown (no price), never $0; ≥ marks a lower bound.
function costText(cost, unpriced) {
  if (cost === null || cost === undefined) return "unknown";
  return (unpriced > 0 ? "≥" : "") + formatUsd(cost);
}

// The amount cell of a row: tokens, or its spend, whichever the board is ranked by.
function amountCell(row, bySpend) {
  if (!bySpend) return el("td", { class: "num tokens", textContent: formatTokens(row.tokens) });
  const unknown = row.cost_micro_usd === null;
  return el("td", {
    class: `num tokens${unknown ? " unknown" : ""}`,
    title: `${formatTokens(row.tokens)} tokens${row.unpriced_tokens ? `, ${formatTokens(row.unpriced_tokens)} without a price` : ""}`,
    textContent: costText(row.cost_micro_usd, row.unpriced_tokens),
  });
}

function spendCaption(board, plural) {
  const spend = costText(board.total_cost_micro_usd, board.unpriced_tokens);
  const without = board.unpriced_members ? ` · ${board.unpriced_members} ${plural} without a price` : "";
  return `${board.week} · by spend · ${board.ranked} ${plural} · ${spend}${without}`;
}

function formatPct(pct) {
  if (pct === null || pct === undefined) return "new";
  const rounded = Math.round(pct * 10) / 10 || 0;
  return `${rounded >= 0 ? "+" : ""}${rounded.toFixed(1)}%`;
}

function moveClass(move) {
  if (move.startsWith("↑")) return "up";
  if (move.startsWith("↓")) return "down";
  return move === "new" ? "new" : "same";
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// Header -----------------------------------------------------------------------------------
function renderHeader(report, overview) {
  const total = report.total;
  document.querySelector('[data-testid="current-week"]').textContent = report.week;
  document.querySelector('[data-testid="global-total"]').textContent = formatTokens(total.tokens);
  const wow = document.querySelector('[data-testid="global-wow"]');
  wow.textContent = total.wow_pct === null ? "–" : formatPct(total.wow_pct);
  wow.className = total.wow_pct > 0 ? "up" : total.wow_pct < 0 ? "down" : "";
  const streak = total.growth_streak;
  document.querySelector('[data-testid="growth-streak"]').textContent =
    streak === 1 ? "1 week" : `${streak} weeks`;
  const spend = report.spend;
  document.querySelector('[data-testid="global-spend"]').textContent = spend
    ? costText(spend.cost_micro_usd, spend.unpriced_tokens)
    : "–";

  const select = document.getElementById("week-select");
  const wanted = ["current", ...overview.weeks.slice().reverse()];
  const have = Array.from(select.options, (o) => o.value);
  if (wanted.join() !== have.join()) {
    select.replaceChildren(
      ...wanted.map((w) =>
        el("option", { value: w, textContent: w === "current" ? `current (${overview.current_week})` : w })
      )
    );
    select.value = wanted.includes(state.week) ? state.week : "current";
  }
}

// Top models -------------------------------------------------------------------------------
// In spend mode the boards are /v1/leaderboard/...?by=spend: ranks, moves, WoW and shares
// are those of spend, and only the members with a price are ranked.
function renderModels(board) {
  const bySpend = board.by === "spend";
  const body = document.querySelector('[data-testid="top-models"] tbody');
  document.querySelector('[data-testid="models-amount"]').textContent = bySpend ? "Spend" : "Tokens";
  document.getElementById("models-caption").textContent = bySpend
    ? spendCaption(board, "models")
    : `${board.week} · ${board.ranked} models · ${formatTokens(board.total_tokens)} tokens`;
  if (!board.rows.length) {
    const empty = bySpend ? "No model with a price yet" : "No traffic yet";
    body.replaceChildren(el("tr", { class: "empty" }, el("td", { colSpan: 7, textContent: empty })));
    return;
  }
  body.replaceChildren(
    ...board.rows.map((row) => {
      const pct = bySpend ? row.spend_wow_pct : row.wow_pct;
      const move = board.has_previous ? row.move : "–";
      const wow = board.has_previous ? formatPct(pct) : "–";
      return el(
        "tr",
        { "data-testid": "model-row", "data-model": row.model },
        el("td", { class: "num rank", textContent: row.rank }),
        el("td", {}, el("span", { class: `move ${moveClass(move)}`, textContent: move })),
        el("td", { class: "name", title: row.model, textContent: row.name }),
        el("td", { textContent: row.vendor }),
        el("td", { textContent: row.country }),
        amountCell(row, bySpend),
        el("td", { class: `num ${pct > 0 ? "up" : pct < 0 ? "down" : ""}`, textContent: wow })
      );
    })
  );
}

// Top apps ---------------------------------------------------------------------------------
// Events without an app are counted (the board's unranked_tokens) but have no row.
function renderApps(board) {
  const bySpend = board.by === "spend";
  const body = document.querySelector('[data-testid="top-apps"] tbody');
  const unranked = board.unranked_tokens ? ` · (no app) ${formatTokens(board.unranked_tokens)} not ranked` : "";
  document.querySelector('[data-testid="apps-amount"]').textContent = bySpend ? "Spend" : "Tokens";
  document.getElementById("apps-caption").textContent = bySpend
    ? spendCaption(board, "apps")
    : `${board.week} · ${board.ranked} apps${unranked}`;
  for (const link of document.querySelectorAll(".downloads a")) {
    const url = new URL(link.href);
    url.searchParams.set("week", board.week);
    link.href = url.pathname + url.search;
  }
  if (!board.rows.length) {
    const empty = bySpend ? "No app with a price yet" : "No app traffic yet";
    body.replaceChildren(el("tr", { class: "empty" }, el("td", { colSpan: 6, textContent: empty })));
    return;
  }
  body.replaceChildren(
    ...board.rows.map((row) => {
      const pct = bySpend ? row.spend_wow_pct : row.wow_pct;
      const shareOf = bySpend ? row.spend_share_pct : row.share_pct;
      const move = board.has_previous ? row.move : "–";
      const wow = board.has_previous ? formatPct(pct) : "–";
      const share = shareOf === null ? "–" : `${shareOf.toFixed(1)}%`;
      return el(
        "tr",
        { "data-testid": "app-row", "data-app": row.app },
        el("td", { class: "num rank", textContent: row.rank }),
        el("td", {}, el("span", { class: `move ${moveClass(move)}`, textContent: move })),
        el("td", { class: "name", textContent: row.name }),
        amountCell(row, bySpend),
        el("td", { class: `num ${pct > 0 ? "up" : pct < 0 ? "down" : ""}`, textContent: wow }),
        el("td", { class: "num", textContent: share })
      );
    })
  );
}

// Country chart ----------------------------------------------------------------------------
function stackedSeries(shares) {
  // Colours follow the latest week's leaders, so this week's big countries never hide in "Other".
  const last = shares.weeks.length - 1;
  const ranked = shares.countries.slice().sort((a, b) => (b.tokens[last] || 0) - (a.tokens[last] || 0));
  const top = ranked.slice(0, CHART_COUNTRIES);
  const rest = ranked.slice(CHART_COUNTRIES);
  const series = top.map((c, i) => ({ label: c.name, code: c.country, tokens: c.tokens, color: PALETTE[i] }));
  if (rest.length) {
    const other = shares.weeks.map((_, w) => rest.reduce((sum, c) => sum + c.tokens[w], 0));
    series.push({ label: `Other (${rest.length})`, code: "other", tokens: other, color: PALETTE[PALETTE.length - 1] });
  }
  return series;
}

function renderCountries(shares, week) {
  const series = stackedSeries(shares);
  const datasets = series.map((s) => ({
    label: s.label,
    data: s.tokens,
    backgroundColor: s.color,
    borderWidth: 0,
    stack: "tokens",
  }));
  const canvas = document.querySelector('[data-testid="country-chart"]');
  if (window.Chart && !state.chart) {
    state.chart = new Chart(canvas, {
      type: "bar",
      data: { labels: shares.weeks, datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, ticks: { callback: (v) => formatTokens(Math.round(v)) } },
        },
        plugins: {
          legend: { display: false }, // the HTML legend beside the chart also shows shares
          tooltip: {
            callbacks: { label: (ctx) => `${ctx.dataset.label}: ${formatTokens(Math.round(ctx.parsed.y))}` },
          },
        },
      },
    });
  } else if (state.chart) {
    state.chart.data.labels = shares.weeks;
    state.chart.data.datasets = datasets;
    state.chart.update("none");
  }

  // The legend describes the week on screen (the latest one when it has no country data).
  let at = shares.weeks.indexOf(week);
  if (at < 0) at = shares.weeks.length - 1;
  const total = shares.totals[at] || 0;
  document.getElementById("legend-week").textContent = shares.weeks[at] || "–";
  // Largest first in the week on screen; "Other" stays last whatever its size.
  const ordered = series.slice().sort((a, b) =>
    a.code === "other" ? 1 : b.code === "other" ? -1 : (b.tokens[at] || 0) - (a.tokens[at] || 0)
  );
  document.querySelector('[data-testid="country-legend"]').replaceChildren(
    ...ordered.map((s) =>
      el(
        "li",
        { "data-testid": "legend-item" },
        el("span", { class: "swatch", style: `background:${s.color}` }),
        el("span", { class: "legend-name", textContent: s.label }),
        el("span", { class: "legend-tokens", textContent: formatTokens(s.tokens[at] || 0) }),
        el("span", { class: "legend-share", textContent: total ? `${((s.tokens[at] / total) * 100).toFixed(1)}%` : "–" })
      )
    )
  );
}

// Refresh loop -----------------------------------------------------------------------------
async function refresh() {
  if (state.refreshing) {
    // A toggle or week change during a refresh: refresh again once this one is done.
    state.again = true;
    return;
  }
  state.refreshing = true;
  state.again = false;
  const week = encodeURIComponent(state.week);
  const by = encodeURIComponent(state.measure);
  try {
    const [overview, report, board, shares, apps] = await Promise.all([
      getJSON("/v1/overview"),
      getJSON(`/v1/report?week=${week}&top=1`),
      getJSON(`/v1/leaderboard/model?week=${week}&n=10&by=${by}`),
      getJSON("/v1/countries/shares"),
      getJSON(`/v1/leaderboard/app?week=${week}&n=10&by=${by}`),
    ]);
    renderHeader(report, overview);
    renderModels(board);
    renderCountries(shares, board.week);
    renderApps(apps);
    setUpdated(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setUpdated(`Waiting for data: ${error.message}`);
  } finally {
    state.refreshing = false;
    if (state.again) refresh();
  }
}

function setUpdated(text) {
  document.querySelector('[data-testid="updated"]').textContent = text;
}

// Live feed --------------------------------------------------------------------------------
const ARROWS = { new_leader: "★", entered: "↑", moved_up: "↑", moved_down: "↓", dropped: "↓" };

function describe(event) {
  if (event.type === "alert") return { icon: "!", tag: "alert", text: event.message };
  const who = event.name || event.member;
  const was = event.old_rank ? ` (was #${event.old_rank})` : "";
  const text = {
    new_leader: `${who} is the new #1${was || " (new)"}`,
    entered: `${who} entered at #${event.new_rank}${was}`,
    moved_up: `${who} moved up to #${event.new_rank}${was}`,
    moved_down: `${who} moved down to #${event.new_rank}${was}`,
    dropped: `${who} dropped out of the top${was}`,
  }[event.kind] || `${who} ${event.kind}`;
  return { icon: ARROWS[event.kind] || "·", tag: event.dimension, text };
}

function addFeedItem(event) {
  if (event.id && state.seen.has(event.id)) return;
  if (event.id) state.seen.add(event.id);
  const { icon, tag, text } = describe(event);
  const kind = event.type === "alert" ? "alert" : event.kind;
  const meta = [event.week, event.phase === "final" ? "final" : null, event.tokens ? formatTokens(event.tokens) : null]
    .filter(Boolean)
    .join(" · ");
  const item = el(
    "li",
    { class: `feed-item ${kind}`, "data-testid": "feed-item", "data-kind": kind },
    el("span", { class: "icon", textContent: icon }),
    el("div", { class: "body" }, el("div", { class: "text", textContent: text }), el("div", { class: "meta", textContent: meta })),
    el("span", { class: "tag", textContent: tag })
  );
  const list = document.querySelector('[data-testid="live-feed"]');
  list.prepend(item);
  while (list.children.length > FEED_MAX) list.lastElementChild.remove();
}

function setFeedState(value) {
  const badge = document.querySelector('[data-testid="feed-state"]');
  badge.dataset.state = value;
  badge.textContent = value;
}

function followEvents() {
  // A small backlog shows the latest changes at once; ids de-duplicate after reconnects.
  const source = new EventSource("/v1/events/stream?backlog=5");
  source.addEventListener("ready", () => setFeedState("live"));
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    addFeedItem(event);
    // A model or app ranking change: refresh now rather than in 5 s.
    if (event.type === "ranking_change" && ["model", "app"].includes(event.dimension)) refresh();
  };
  source.onerror = () => setFeedState("reconnecting");
}

function start() {
  const select = document.getElementById("week-select");
  select.addEventListener("change", () => {
    state.week = select.value;
    refresh();
  });
  const buttons = document.querySelectorAll("[data-measure]");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      state.measure = button.dataset.measure;
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      refresh();
    });
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
  followEvents();
}

document.addEventListener("DOMContentLoaded", start);
