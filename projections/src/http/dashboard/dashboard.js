// The supervisors' dashboard: plain JavaScript, no build step, nothing fetched from
// elsewhere. Everything it shows comes from the JSON API under /api/v1/; it redraws when
// /api/v1/live (server-sent events) says the read models moved.
//
// Sign-in: every API call carries `Authorization: Bearer <token>`. The token comes from
// the login form or a login link (`/login#token=…`: a fragment never reaches a server or
// its logs) and is kept in sessionStorage (this tab only). A 401 anywhere returns to the
// login form with the server's reason. The live stream is read with fetch() rather than
// EventSource, which cannot send the header, so no token ever travels in a URL.
"use strict";

// ---------------------------------------------------------------------------------------
// Words
// ---------------------------------------------------------------------------------------

const STATUS = {
  new: "新建", reported: "已上报", awaiting_dispatch: "待派遣", dispatched: "已派遣",
  acknowledged: "已签收", in_progress: "处置中", suspended: "挂起", resolved: "待核查",
  closed: "已结案", rejected: "不予立案", merged: "已合并", voided: "已作废",
};
const STEP = { accept: "立案", dispatch: "派遣", acknowledge: "签收", resolve: "处置", verify: "核查" };
const TIER = { building: "楼栋", community: "社区", district: "街道" };
const ACTOR = { resident: "居民", grid_worker: "网格员", supervisor: "监督员", system: "系统" };
const EVENT = {
  "case.reported": "上报 reported", "case.accepted": "立案 accepted", "case.rejected": "不予立案 rejected",
  "case.merged": "合并 merged", "case.dispatched": "派遣 dispatched", "case.acknowledged": "签收 acknowledged",
  "case.declined": "退回 declined", "case.reassigned": "改派 reassigned", "case.handling_started": "开始处置 handling",
  "case.suspended": "挂起 suspended", "case.resumed": "恢复 resumed", "case.extension_granted": "延期 extension",
  "case.resolved": "处置完成 resolved", "case.verified": "核查 verified", "case.rework_requested": "返工 rework",
  "case.closed": "结案 closed", "case.reopened": "重新打开 reopened", "case.evaluated": "评价 evaluated",
  "case.comment_added": "备注 comment", "case.escalated": "升级 escalated", "case.sla_warning": "预警 SLA warning",
  "case.sla_breached": "超时 SLA breach", "case.voided": "作废 voided",
  "case.supervision_requested": "督办 supervision requested",
};
const LIGHT_ORDER = { none: 0, green: 1, yellow: 2, red: 3 };

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// ---------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------

const TOKEN_KEY = "wangge.token";
const ROLE = {
  grid_worker: "网格员 grid worker", supervisor: "网格监督员 supervisor", district: "街道 district",
  auditor: "审计 auditor", admin: "管理员 admin", metrics: "监控 metrics",
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Raised when the server refuses the credentials: stops whatever was drawing.
class SignedOut extends Error {}

function showLogin(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  const box = $("login-reason");
  box.hidden = !reason;
  box.textContent = reason ?? "";
  $("login").hidden = false;
  document.body.dataset.auth = "out";
  $("login-token").focus();
}

function signOut(reason) {
  if (liveAbort) liveAbort.abort();
  showLogin(reason);
}

async function api(path) {
  const response = await fetch(path, {
    headers: { accept: "application/json", authorization: `Bearer ${token() ?? ""}` },
  });
  const body = await response.json();
  if (response.status === 401) {
    signOut(`登录已失效，请重新登录 · ${body.reason}`);
    throw new SignedOut(body.reason);
  }
  if (!response.ok) {
    throw new Error(`${path}: ${body.code} ${body.field ?? ""} ${body.reason}`);
  }
  return body;
}

// Times are shown in the city's time (UTC+8).
const OFFSET_MS = 8 * 3600 * 1000;
function local(iso) {
  if (!iso) return "—";
  const shifted = new Date(Date.parse(iso) + OFFSET_MS).toISOString();
  return `${shifted.slice(5, 10)} ${shifted.slice(11, 16)}`;
}
function localDay(iso) {
  return new Date(Date.parse(iso) + OFFSET_MS).toISOString().slice(0, 10);
}
function addDays(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}
function duration(seconds) {
  if (seconds == null) return "—";
  const minutes = Math.floor(seconds / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  if (days > 0) return `${days}天${hours}小时`;
  if (hours > 0) return `${hours}小时${rest}分`;
  return `${rest}分`;
}
function percent(rate) {
  return rate == null ? "—" : `${(rate * 100).toFixed(1)}%`;
}
function lightOf(row) {
  return row ? row.light : "none";
}
function countsHtml(row) {
  if (!row) return `<span class="counts">无在办 none open</span>`;
  return `<span class="counts"><b class="r">${row.red}</b> 红 · <b class="y">${row.yellow}</b> 黄 · <b class="g">${row.green}</b> 绿</span>`;
}

// ---------------------------------------------------------------------------------------
// What the page knows
// ---------------------------------------------------------------------------------------

const data = {
  grid: null,
  names: new Map(), // code → name
  parents: new Map(), // code → parent code
  byDistrict: new Map(),
  byCommunity: new Map(),
  byCell: new Map(), // `${code}|${tier}` → board row
  status: null,
};
// Where the supervisor has drilled down to.
const view = { level: "city", district: null, community: null, building: null, caseId: null };

function indexGrid(grid) {
  data.grid = grid;
  for (const district of grid.districts) {
    data.names.set(district.code, district.name);
    for (const community of district.communities) {
      data.names.set(community.code, community.name);
      data.parents.set(community.code, district.code);
      for (const building of community.buildings) {
        data.names.set(building.code, building.name);
        data.parents.set(building.code, community.code);
      }
    }
  }
  $("city").textContent = grid.city;
}

const nameOf = (code) => data.names.get(code) ?? code;

function byCode(rows, withTier) {
  const map = new Map();
  for (const row of rows) map.set(withTier ? `${row.code}|${row.tier}` : row.code, row);
  return map;
}

// ---------------------------------------------------------------------------------------
// Refreshing: everything on the page, when the live stream says something moved
// ---------------------------------------------------------------------------------------

let refreshing = false;
let again = false;
let refreshes = 0;

async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    do {
      again = false;
      await refreshOnce();
    } while (again);
  } catch (error) {
    console.error(error);
  } finally {
    refreshing = false;
  }
}

let scheduled = null;
function schedule() {
  if (scheduled) return;
  scheduled = setTimeout(() => {
    scheduled = null;
    refresh();
  }, 50);
}

async function refreshOnce() {
  const [status, districts, communities, cells, overdue, sla] = await Promise.all([
    api("/api/v1/projections"),
    api("/api/v1/board?group=district"),
    api("/api/v1/board?group=community"),
    api("/api/v1/board?group=cell"),
    api("/api/v1/overdue?limit=50"),
    api("/api/v1/sla/status"),
  ]);
  drawSlaBanner(sla);
  data.status = status;
  data.byDistrict = byCode(districts, false);
  data.byCommunity = byCode(communities, false);
  data.byCell = byCode(cells, true);
  drawStatus(status);
  drawTotals(districts);
  drawOverdue(overdue);
  await drawView();
  await Promise.all([drawIndicators(status.now), drawRanking(status.now)]);
  refreshes += 1;
  document.body.dataset.refreshes = String(refreshes);
}

// A business calendar whose holidays run out within the warning period (or already have):
// deadlines past that date would count holidays as working days until the next year's
// schedule is published.
function drawSlaBanner(sla) {
  const banner = $("sla-banner");
  const expiring = sla.calendars.filter((calendar) => calendar.expiring);
  banner.hidden = expiring.length === 0;
  banner.dataset.calendars = expiring.map((calendar) => calendar.id).join(" ");
  banner.innerHTML = expiring.map((calendar) => {
    const left = calendar.days_left < 0
      ? `已过期 ${-calendar.days_left} 天 ran out ${-calendar.days_left} days ago`
      : `剩余 ${calendar.days_left} 天 ${calendar.days_left} days left`;
    return `<div>节假日安排即将到期 calendar running out: <b>${esc(calendar.name)}</b> (${esc(calendar.id)}) ` +
      `— 节假日已发布至 holidays published through <b>${esc(calendar.published_through)}</b>, ${left}. ` +
      `请发布下一年的节假日安排 publish next year's schedule: <code>wangge sla publish</code></div>`;
  }).join("");
}

// A deadline counted past the calendar's published holidays (on the weekly hours alone): the
// engine revises it when the next year's schedule is published, so it is shown as provisional.
function provisionalMark(sla) {
  return sla.provisional
    ? ` <span class="provisional" title="暂定：时限超出已发布的节假日安排，按每周工作时间计算，发布下一年安排后将重新计算 provisional: counted past the published holidays on the weekly hours; revised when the next schedule is published">暂定 provisional</span>`
    : "";
}

function drawStatus(status) {
  $("now").textContent = local(status.now);
  $("head").textContent = status.head ?? "—";
  const behind = Math.max(0, ...status.projections.map((p) => p.behind ?? 0));
  const lag = $("lag");
  lag.dataset.behind = String(behind);
  lag.textContent = behind === 0 ? "投影已同步 projections caught up" : `投影落后 ${behind} behind`;
}

function drawTotals(districts) {
  const sum = { green: 0, yellow: 0, red: 0, supervised: 0 };
  for (const row of districts) {
    sum.green += row.green;
    sum.yellow += row.yellow;
    sum.red += row.red;
    sum.supervised += row.supervised ?? 0;
  }
  $("total-supervised").textContent = sum.supervised;
  $("total-open").textContent = sum.green + sum.yellow + sum.red;
  $("total-green").textContent = sum.green;
  $("total-yellow").textContent = sum.yellow;
  $("total-red").textContent = sum.red;
}

// ---------------------------------------------------------------------------------------
// The traffic-light map and the drill-down
// ---------------------------------------------------------------------------------------

function go(level, codes = {}) {
  Object.assign(view, { level, district: null, community: null, building: null, caseId: null }, codes);
  drawView();
}

function drawCrumbs() {
  const parts = [`<a data-go="city">全市 city</a>`];
  if (view.district) parts.push(`<a data-go="district">${esc(nameOf(view.district))}</a>`);
  if (view.community) parts.push(`<a data-go="community">${esc(nameOf(view.community))}</a>`);
  if (view.building) parts.push(`<a data-go="building">${esc(nameOf(view.building))}</a>`);
  if (view.caseId) parts.push(`<span>案件 case</span>`);
  const crumbs = $("crumbs");
  crumbs.innerHTML = parts.join(`<span class="sep">›</span>`);
  for (const link of crumbs.querySelectorAll("a")) {
    link.onclick = () => {
      const level = link.dataset.go;
      const keep = { city: [], district: ["district"], community: ["district", "community"], building: ["district", "community", "building"] }[level];
      const codes = {};
      for (const key of keep) codes[key] = view[key];
      go(level, codes);
    };
  }
}

function tile(code, name, row, attrs = "") {
  const light = lightOf(row);
  const count = row ? `<span class="tcount">${row.red ? row.red + "红 " : ""}${row.yellow ? row.yellow + "黄 " : ""}${row.green}绿</span>` : "";
  return `<div class="tile" data-code="${esc(code)}" data-light="${light}" title="${esc(name)} ${esc(code)}" ${attrs}>` +
    `<span class="tname">${esc(name)}</span>${count}</div>`;
}

async function drawView() {
  drawCrumbs();
  const map = $("map");
  const cases = $("cases");
  const detail = $("case");
  map.hidden = view.level === "case";
  cases.hidden = view.level !== "building";
  detail.hidden = view.level !== "case";
  if (!data.grid) return;
  if (view.level === "city") drawCity(map);
  if (view.level === "district") drawDistrict(map);
  // A building's cases are listed under its community's tiles, the building marked.
  if (view.level === "community" || view.level === "building") drawCommunity(map);
  if (view.level === "building") await drawBuilding(cases);
  if (view.level === "case") await drawCase(detail);
}

function wireTiles(container, onClick) {
  for (const element of container.querySelectorAll(".tile")) {
    element.onclick = () => onClick(element.dataset.code);
  }
}

function districtBlock(district, big) {
  const row = data.byDistrict.get(district.code);
  const tiles = district.communities
    .map((community) => tile(community.code, community.name.replace(/社区$/, ""), data.byCommunity.get(community.code)))
    .join("");
  const held = data.byCell.get(`${district.code}|district`);
  const heldNote = held ? ` · 街道本级 held at district: ${held.red + held.yellow + held.green}` : "";
  return `<div class="district" data-code="${esc(district.code)}" data-light="${lightOf(row)}">` +
    `<div class="district-head" data-district="${esc(district.code)}"><span><span class="light" data-light="${lightOf(row)}"></span>` +
    `<span class="name">${esc(district.name)}</span> <small>${esc(district.code)}</small></span>` +
    `<span>${countsHtml(row)}<small>${esc(heldNote)}</small></span></div>` +
    `<div class="tiles${big ? " big" : ""}">${tiles}</div></div>`;
}

function drawCity(map) {
  map.innerHTML = data.grid.districts.map((district) => districtBlock(district, false)).join("");
  for (const head of map.querySelectorAll(".district-head")) {
    head.onclick = () => go("district", { district: head.dataset.district });
  }
  wireTiles(map, (code) => go("community", { district: data.parents.get(code), community: code }));
}

function drawDistrict(map) {
  const district = data.grid.districts.find((d) => d.code === view.district);
  if (!district) return go("city");
  map.innerHTML = districtBlock(district, true);
  wireTiles(map, (code) => go("community", { district: district.code, community: code }));
}

function drawCommunity(map) {
  const district = data.grid.districts.find((d) => d.code === view.district);
  const community = district && district.communities.find((c) => c.code === view.community);
  if (!community) return go("city");
  const row = data.byCommunity.get(community.code);
  const held = data.byCell.get(`${community.code}|community`);
  const tiles = community.buildings
    .map((building) => tile(building.code, building.name, data.byCell.get(`${building.code}|building`),
      building.code === view.building ? `data-selected="true"` : ""))
    .join("");
  map.innerHTML = `<div class="district" data-code="${esc(community.code)}" data-light="${lightOf(row)}">` +
    `<div class="level-head"><span><span class="light" data-light="${lightOf(row)}"></span><span class="name">${esc(community.name)}</span> ` +
    `<small>${esc(community.code)} · 负责人 ${esc(community.supervisor)}</small></span>${countsHtml(row)}</div>` +
    (held ? `<p class="counts">社区本级在办 held at the community: ${countsHtml(held)}</p>` : "") +
    `<div class="tiles big">${tiles}</div></div>`;
  wireTiles(map, (code) => go("building", { district: district.code, community: community.code, building: code }));
}

async function drawBuilding(container) {
  const page = await api(`/api/v1/cases?building=${encodeURIComponent(view.building)}&limit=100`);
  const rows = page.items
    .map((c) => `<tr class="clickable case-row" data-case="${esc(c.case_id)}" data-light="${c.sla.light ?? "none"}">` +
      `<td><span class="light" data-light="${c.sla.light ?? "none"}"></span>${esc(c.title)}${supervisionBadge(c)}</td>` +
      `<td>${esc(STATUS[c.status] ?? c.status)}</td><td>${esc(c.category ?? c.reported_category)}</td>` +
      `<td>${esc(c.assignee ?? "—")}</td><td>${c.sla.step ? esc(STEP[c.sla.step] ?? c.sla.step) + " " + local(c.sla.deadline) + provisionalMark(c.sla) : "—"}</td>` +
      `<td>${local(c.reported_at)}</td></tr>`)
    .join("");
  container.innerHTML = `<h3>${esc(nameOf(view.building))} 的案件 <small>cases reported here</small></h3>` +
    (rows
      ? `<table><thead><tr><th>案件 case</th><th>状态 status</th><th>类别 category</th><th>处理人 holder</th><th>时限 deadline</th><th>上报 reported</th></tr></thead><tbody>${rows}</tbody></table>`
      : `<p class="empty">暂无案件 no cases</p>`);
  for (const row of container.querySelectorAll("tr[data-case]")) {
    row.onclick = () => openCase(row.dataset.case);
  }
}

/// The 督办 badge of a case under supervision: since when and by whom, on hover.
function supervisionBadge(c) {
  const s = c.supervision;
  if (!s) return "";
  const by = s.unit ?? s.leaders.join(", ");
  return ` <span class="badge supervision" title="督办 since ${esc(local(s.since))}: ${esc(by)}">督办</span>`;
}

function openCase(caseId, location) {
  const codes = location ?? { district: view.district, community: view.community, building: view.building };
  go("case", { ...codes, caseId });
}

async function drawCase(container) {
  const [item, audit] = await Promise.all([
    api(`/api/v1/cases/${view.caseId}`),
    api(`/api/v1/cases/${view.caseId}/audit`),
  ]);
  const bad = new Map(audit.problems.map((p) => [p.sequence, p]));
  const entries = audit.entries
    .map((entry) => {
      const problem = bad.get(entry.sequence);
      const changes = entry.changes
        .map((change) => `<span>${esc(change.field)}: ${esc(change.from ?? "—")} → ${esc(change.to ?? "—")}</span>`)
        .join("");
      return `<tr class="entry" data-sequence="${entry.sequence}">` +
        `<td>${entry.sequence}</td><td>${local(entry.occurred_at)}</td>` +
        `<td>${esc(EVENT[entry.event_type] ?? entry.event_type)}</td>` +
        `<td>${esc(ACTOR[entry.actor.kind] ?? entry.actor.kind)} ${esc(entry.actor.id)}</td>` +
        `<td class="changes">${changes}</td>` +
        `<td><code title="${esc(entry.hash)}">${esc(entry.hash.slice(0, 10))}</code> ` +
        (problem ? `<span class="problem">✗ ${esc(problem.kind)}</span>` : `<span title="链接 ${esc(entry.prev_hash.slice(0, 10))}">✓</span>`) +
        `</td></tr>`;
    })
    .join("");
  const problems = audit.problems.map((p) => `<li class="problem">${esc(p.kind)} #${p.sequence}: ${esc(p.detail)}</li>`).join("");
  const s = item;
  const field = (k, v) => `<div><span class="k">${k}</span> ${v}</div>`;
  container.innerHTML =
    `<h3><span class="light" data-light="${s.sla.light ?? "none"}"></span>${esc(s.title)}${supervisionBadge(s)}</h3>` +
    `<div class="case-summary">` +
    field("状态 status", esc(STATUS[s.status] ?? s.status)) +
    field("类别 category", esc(s.category ?? s.reported_category)) +
    field("位置 where", `${esc(nameOf(s.location.community))} ${esc(nameOf(s.location.building))}`) +
    field("责任层级 tier", `${esc(TIER[s.tier] ?? "—")} ${esc(nameOf(s.cell))}`) +
    field("处理人 holder", esc(s.assignee ?? "—")) +
    (s.supervision
      ? field("督办 supervision", `${esc(s.supervision.unit ?? "—")} (${esc(s.supervision.leaders.join(", "))}) · ` +
          `${local(s.supervision.since)} 起 since · ${esc(STEP[s.supervision.step] ?? s.supervision.step)} 超时 overdue since ${local(s.supervision.overdue_since)}`)
      : "") +
    field("时限 deadline", s.sla.step ? `${esc(STEP[s.sla.step] ?? s.sla.step)} ${local(s.sla.deadline)}${provisionalMark(s.sla)}` : "—") +
    field("上报 reported", local(s.reported_at)) +
    field("案件号 id", `<code>${esc(s.case_id)}</code>`) +
    `</div>` +
    `<h3>审计记录 audit trail <span id="chain-status" class="chain" data-intact="${audit.intact}">` +
    (audit.intact ? "哈希链完整 hash chain intact ✓" : `哈希链异常 chain broken ✗ (${audit.problems.length})`) +
    `</span></h3>` +
    (problems ? `<ul>${problems}</ul>` : "") +
    `<table class="audit" id="audit"><thead><tr><th>#</th><th>时间 time</th><th>事件 event</th><th>操作人 actor</th><th>变更 what changed</th><th>哈希 hash</th></tr></thead>` +
    `<tbody>${entries}</tbody></table>`;
}

// ---------------------------------------------------------------------------------------
// The overdue list, the red-and-black board, the indicator charts
// ---------------------------------------------------------------------------------------

function drawOverdue(page) {
  $("overdue-count").textContent = page.items.length + (page.next_cursor ? "+" : "");
  const body = $("overdue");
  if (page.items.length === 0) {
    body.innerHTML = `<tr><td colspan="5" class="empty">无超时案件 nothing overdue</td></tr>`;
    return;
  }
  body.innerHTML = page.items
    .map((c) => `<tr class="clickable overdue-row" data-case="${esc(c.case_id)}" data-district="${esc(c.district)}" data-community="${esc(c.community)}" data-building="${esc(c.building)}">` +
      `<td>${esc(c.title)}</td><td>${esc(nameOf(c.community))} ${esc(nameOf(c.building))}</td>` +
      `<td>${esc(STEP[c.step] ?? c.step)}</td><td class="late">${duration(c.late_by_seconds)}</td>` +
      `<td>${esc(c.assignee ?? "待派遣 waiting")} <small>${esc(TIER[c.tier] ?? "")}</small></td></tr>`)
    .join("");
  for (const row of body.querySelectorAll("tr[data-case]")) {
    row.onclick = () => openCase(row.dataset.case, {
      district: row.dataset.district, community: row.dataset.community, building: row.dataset.building,
    });
  }
}

async function drawRanking(now) {
  const to = localDay(now);
  const from = addDays(to, -29);
  // The API's default minimum of due cases: a rate over a case or two is not ranked.
  const ranking = await api(`/api/v1/ranking?from=${from}&to=${to}&limit=5`);
  const item = (cell) => `<li title="按期结案 ${cell.closed_on_time} / 应结案 ${cell.due}">${esc(nameOf(cell.community))} ${esc(cell.name)} <b>${percent(cell.on_time_closure_rate)}</b> <small>${cell.closed_on_time}/${cell.due}</small></li>`;
  const none = `<li class="empty">无 none</li>`;
  $("ranking-red").innerHTML = ranking.red.map(item).join("") || none;
  $("ranking-black").innerHTML = ranking.black.map(item).join("") || none;
  const note = $("ranking-note");
  note.dataset.minDue = ranking.min_due;
  note.textContent = `按期结案 / 应结案，${from} 至 ${to}；应结案 ≥ ${ranking.min_due} 件的楼栋网格参与排名：${ranking.ranked_cells} 个。` +
    ` Cells with ≥ ${ranking.min_due} due cases ranked: ${ranking.ranked_cells}.`;
}

async function drawIndicators(now) {
  const to = localDay(now);
  const from = addDays(to, -13);
  const [days, [total]] = await Promise.all([
    api(`/api/v1/indicators?from=${from}&to=${to}&group=day`),
    api(`/api/v1/indicators?from=${from}&to=${to}`),
  ]);
  $("rate-close").textContent = percent(total?.closure_rate);
  $("rate-on-time").textContent = percent(total?.on_time_closure_rate);
  $("rate-satisfied").textContent = percent(total?.satisfaction_rate);
  const axis = [];
  for (let day = from; day <= to; day = addDays(day, 1)) axis.push(day);
  const byDay = new Map(days.map((row) => [row.key, row]));
  const values = (pick) => axis.map((day) => (byDay.has(day) ? pick(byDay.get(day)) : null));
  lineChart($("chart-rates"), axis, [
    { name: "结案率 closure", color: "#1f5fa8", values: values((r) => r.closure_rate) },
    { name: "按期结案率 on time", color: "#2e9d57", values: values((r) => r.on_time_closure_rate) },
  ], 1, (v) => `${Math.round(v * 100)}%`);
  const hours = (seconds) => (seconds == null ? null : seconds / 3600);
  const p50 = values((r) => hours(r.time_to_close_p50_seconds));
  const p90 = values((r) => hours(r.time_to_close_p90_seconds));
  const top = Math.max(1, ...p90.filter((v) => v != null), ...p50.filter((v) => v != null));
  lineChart($("chart-close"), axis, [
    { name: "p50", color: "#e3a008", values: p50 },
    { name: "p90", color: "#d93a32", values: p90 },
  ], Math.ceil(top), (v) => `${v.toFixed(v < 10 ? 1 : 0)}h`);
}

// An SVG line chart: days along x, values 0..max along y, gaps where a day has no value.
function lineChart(svg, days, series, max, format) {
  const W = 520, H = 220, left = 44, right = 10, top = 12, bottom = 40;
  const x = (i) => left + (days.length <= 1 ? 0 : (i * (W - left - right)) / (days.length - 1));
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    parts.push(`<line class="grid" x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}"/>`);
    parts.push(`<text x="${left - 4}" y="${y(v) + 3}" text-anchor="end">${esc(format(v))}</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}"/>`);
  days.forEach((day, i) => {
    if (i % 2 === 0 || i === days.length - 1) {
      parts.push(`<text x="${x(i)}" y="${H - bottom + 14}" text-anchor="middle">${day.slice(5)}</text>`);
    }
  });
  series.forEach((s, index) => {
    let path = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) {
        pen = false;
        return;
      }
      path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(Math.min(v, max)).toFixed(1)} `;
      pen = true;
    });
    if (path) parts.push(`<path class="series" data-series="${esc(s.name)}" stroke="${s.color}" d="${path.trim()}"/>`);
    s.values.forEach((v, i) => {
      if (v != null) parts.push(`<circle cx="${x(i)}" cy="${y(Math.min(v, max))}" r="2.5" fill="${s.color}"><title>${days[i]} ${esc(s.name)} ${esc(format(v))}</title></circle>`);
    });
    const lx = left + 8 + index * 150;
    parts.push(`<rect x="${lx}" y="${H - 16}" width="12" height="4" fill="${s.color}"/>`);
    parts.push(`<text x="${lx + 16}" y="${H - 11}">${esc(s.name)}</text>`);
  });
  svg.innerHTML = parts.join("");
}

// ---------------------------------------------------------------------------------------
// Live
// ---------------------------------------------------------------------------------------

function setLive(state) {
  const live = $("live");
  live.dataset.state = state;
  $("live-text").textContent = state === "open" ? "实时 live" : state === "closed" ? "已断开, 重连中 reconnecting" : "连接中 connecting";
}

// The live stream as server-sent events read through fetch(), with the bearer header; on
// a drop it reconnects after a pause, on a 401 it signs out.
let liveAbort = null;
async function follow() {
  liveAbort = new AbortController();
  try {
    const response = await fetch("/api/v1/live", {
      headers: { accept: "text/event-stream", authorization: `Bearer ${token() ?? ""}` },
      signal: liveAbort.signal,
    });
    if (response.status === 401) {
      const body = await response.json();
      signOut(`登录已失效，请重新登录 · ${body.reason}`);
      return;
    }
    if (!response.ok || !response.body) throw new Error(`live: ${response.status}`);
    setLive("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = block.split("\n").find((line) => line.startsWith("event:"))?.slice(6).trim();
        if (name === "ready" || name === "progress") schedule();
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    console.warn(error);
  }
  if (!token()) return;
  setLive("closed");
  setTimeout(follow, 3000);
}

async function start() {
  const me = await api("/api/v1/me");
  const cells = me.cells.map((cell) => cell.name).join("、");
  $("whoami").textContent = `${me.grid_id} · ${ROLE[me.role] ?? me.role}${cells ? ` · ${cells}` : ""}`;
  $("login").hidden = true;
  document.body.dataset.auth = "in";
  indexGrid(await api("/api/v1/grid"));
  await refresh();
  follow();
}

function begin() {
  start().catch((error) => {
    if (error instanceof SignedOut) return;
    console.error(error);
    document.body.dataset.error = String(error);
  });
}

// A login link carries the token in the fragment: keep it, then drop it from the address
// bar (and history) so it is not bookmarked or shared by accident.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
  history.replaceState(null, "", "/");
}
$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const given = $("login-token").value.trim();
  if (!given) {
    showLogin("请粘贴访问令牌 · paste a token");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, given);
  $("login-token").value = "";
  begin();
});
$("signout").addEventListener("click", () => signOut("已退出 · signed out"));
if (token()) {
  begin();
} else {
  showLogin(null);
}
