import { execFileSync } from 'node:child_process';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN } from '../playwright.config';
import { BROWSER_ZONE, dateTimeIn } from './zone';

// The history as an operator reads it, on a server of its own against the real PostgreSQL
// server: chart ranges reaching back hours and days, the runs page's filters and a run's
// attempts, what survives a restart, and the audit log's filters and pages. Samples and runs
// from before the server started are written straight into its tables with psql.

const PG = process.env.LEASEWATCH_TEST_PG_HOST ?? '127.0.0.1';
const DATABASE = 'leasewatch_e2e_history';
const PORT = 3225;
const BASE = `http://127.0.0.1:${PORT}`;
const STATUS = `${BASE}/api/admin/background-jobs/status`;
const OLD_INSTANCE = 'e2e-old-0001';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// A multiple of both the 24-hour charts' point (480 s) and the 7-day charts' (3,360 s): a
// sample at such an instant is the start of its point on both.
const POINT = 3_360_000;

/** One SQL statement through psql as the test's own superuser, its output. */
function sql(statement: string, dbname = 'postgres'): string {
  return execFileSync('psql', [`host=${PG} user=postgres dbname=${dbname}`, '-XAtqv', 'ON_ERROR_STOP=1', '-c', statement], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** "2026-12-02 14:03:07 UTC", as the pages write an instant. */
function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

/** "2026-12-02 19:33:07", as the browser writes an instant once it has hydrated the page. */
function local(ms: number): string {
  return dateTimeIn(new Date(ms).toISOString(), BROWSER_ZONE);
}

/** "2026-12-02T14:03:07Z", as a URL's from and to. */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const aligned = Math.floor(Date.now() / POINT) * POINT;
/** Samples from before the server started: 3 hours ago (37 in use) and 3 days ago (41). */
const hoursAgo = aligned - 3 * POINT;
const daysAgo = aligned - 77 * POINT;

/** A run from two days ago, as history writes it: its columns and its record as JSON. */
function oldRun(id: number, task: string, outcome: string, failure: string | null, startedAt: number) {
  const failed = outcome === 'failed';
  const attempts = failed
    ? [
        {
          number: 1,
          started_at: new Date(startedAt).toISOString(),
          duration_ms: 5000,
          error: 'no connection within 5 s',
          failure,
          retry_delay_ms: 2000,
          leases: [{ lease_id: 900 + id, backend_pid: 4242, waited_ms: 1500 }],
        },
        {
          number: 2,
          started_at: new Date(startedAt + 7000).toISOString(),
          duration_ms: 5000,
          error: 'no connection within 5 s',
          failure,
          retry_delay_ms: null,
          leases: [],
        },
      ]
    : [
        {
          number: 1,
          started_at: new Date(startedAt).toISOString(),
          duration_ms: 40,
          error: null,
          failure: null,
          retry_delay_ms: null,
          leases: [{ lease_id: 900 + id, backend_pid: 4343, waited_ms: 3 }],
        },
      ];
  const duration = failed ? 12_000 : 40;
  const detail = failed ? 'no connection within 5 s' : 'round trip 0.4 ms';
  const record = {
    run_id: id,
    trigger: 'schedule',
    started_at: new Date(startedAt).toISOString(),
    duration_ms: duration,
    attempts: attempts.length,
    backoff_ms: failed ? [2000] : [],
    outcome: failed ? { kind: 'failed', cause: failure, error: detail } : { kind: 'succeeded', rows: 0, detail },
    deferred_ms: 0,
    leases: 1,
    scheduled_at: new Date(startedAt).toISOString(),
    attempt_log: attempts,
  };
  const text = (value: string | null) => (value === null ? 'NULL' : `'${value.replaceAll("'", "''")}'`);
  return `('${OLD_INSTANCE}', ${id}, 'old-host', '${task}', 'schedule', ${startedAt}, ${startedAt}, ${startedAt + duration}, ${duration}, '${outcome}', ${text(failure)}, ${text(detail)}, 0, ${attempts.length}, 1, ${text(JSON.stringify(record))})`;
}

const twoDaysAgo = Date.now() - 2 * DAY;
const OLD_RUNS = [
  oldRun(1, 'health_check', 'failed', 'acquire_timeout', twoDaysAgo),
  oldRun(2, 'health_check', 'succeeded', null, twoDaysAgo - HOUR),
  oldRun(3, 'status_transitions', 'failed', 'database', twoDaysAgo - 2 * HOUR),
  oldRun(4, 'health_check', 'failed', 'slots_exhausted', twoDaysAgo - 3 * HOUR),
];

function seed() {
  const sample = (at: number, active: number) =>
    `('${OLD_INSTANCE}', ${at}, 60, ${active}, 2, 0, 0, 0, 1.5, 20, NULL, NULL, NULL)`;
  sql(
    `INSERT INTO leasewatch.pool_samples (instance, at_ms, span_secs, active, idle, waiting, leases, stale, p95_ms, lease_limit, budget, server_clients, server_usable) VALUES ${sample(hoursAgo, 37)}, ${sample(daysAgo, 41)}`,
    DATABASE,
  );
  sql(
    `INSERT INTO leasewatch.run_history (instance, run_id, host, task, trigger, scheduled_at_ms, started_at_ms, ended_at_ms, duration_ms, outcome, failure, detail, rows_changed, attempts, leases, record) VALUES ${OLD_RUNS.join(', ')}`,
    DATABASE,
  );
}

function newServer() {
  return new ExtraServer(PORT, { DATABASE_URL: `postgres://postgres@${PG}:5432/${DATABASE}` });
}

async function act(body: object) {
  const response = await fetch(STATUS, {
    method: 'POST',
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status, JSON.stringify(body)).toBe(200);
  return response.json();
}

/** The run ids listed, in order. */
function listed(page: Page) {
  return page.locator('table.runs-list tbody tr').evaluateAll((rows) => rows.map((r) => `${r.getAttribute('data-instance')}/${r.getAttribute('data-run')}`));
}

/** The colour a CSS variable of the stylesheet computes to, for comparison with an element's. */
function colourOf(page: Page, variable: string) {
  return page.evaluate((variable) => {
    const probe = document.createElement('span');
    probe.style.color = `var(${variable})`;
    document.body.append(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
  }, variable);
}

/** Opens a page and waits for it to hydrate. */
async function open(page: Page, path: string) {
  const response = await page.goto(`${BASE}${path}`);
  await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();
  return response!;
}

test.describe.configure({ mode: 'serial' });

let server: ExtraServer;

test.beforeAll(async () => {
  sql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  sql(`CREATE DATABASE ${DATABASE}`);
  server = newServer();
  await server.start();
  seed();
});

test.afterAll(async () => {
  await server?.remove();
  sql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
});

test('a chart range shows the samples from hours and days ago, from the database', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, BASE);
  const point = (at: number, active: number) => page.locator(`.chart.pool .point[aria-label^="${local(at)}: ${active} in use"]`);

  await open(page, '/?range=24h');
  await expect(page.locator('.ranges a[aria-current="true"]')).toHaveText('24 h');
  const caption = page.locator('.chart.pool figcaption');
  await expect(caption).toContainText('Connections, last 24 hours');
  await expect(caption).toContainText('all instances, from the database');
  await expect(point(hoursAgo, 37)).toHaveCount(1);
  await expect(point(daysAgo, 41)).toHaveCount(0);
  // In the page as the server sends it: readable without JavaScript.
  const sent = await (await page.request.get(`${BASE}/?range=24h`)).text();
  expect(sent).toContain(`aria-label="${utc(hoursAgo)}: 37 in use`);
  const ticks = await page.locator('.chart.pool text.tick').allTextContents();
  expect(ticks.filter((t) => / h$|^now$/.test(t))).toEqual(['−24 h', '−18 h', '−12 h', '−6 h', 'now']);

  // The ranges are links: the keyboard takes them too.
  await page.locator('.ranges a[data-range="7d"]').focus();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(`${BASE}/?range=7d`);
  await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();
  await expect(page.locator('.ranges a[aria-current="true"]')).toHaveText('7 days');
  await expect(point(hoursAgo, 37)).toHaveCount(1);
  await expect(point(daysAgo, 41)).toHaveCount(1);
  // The chart is read again at its own pace, never with the poll: still there after polls.
  await page.waitForTimeout(3_000);
  await expect(point(daysAgo, 41)).toHaveCount(1);

  // The last 15 minutes and hour are this instance's memory, none of the old samples.
  await open(page, '/?range=1h');
  await expect(page.locator('.chart.pool figcaption')).toContainText('Connections, last hour');
  await expect(page.locator('.chart.pool figcaption')).toContainText('this instance');
  await expect(point(hoursAgo, 37)).toHaveCount(0);

  // A span with nothing in it says so; one the server refuses says why, with a 400.
  await open(page, `/?from=${iso(daysAgo - 3 * DAY)}&to=${iso(daysAgo - 2 * DAY)}`);
  await expect(page.locator('.chart.pool [data-empty="pool"]')).toContainText('No samples in the span');
  await expect(page.locator('.ranges [data-range="custom"][aria-current="true"]')).toBeVisible();
  const refused = await open(page, '/?range=2d');
  expect(refused.status()).toBe(400);
  await expect(page.locator('[data-banner="samples"]')).toContainText('range: "2d" is not one of 15m, 1h, 24h, 7d');

  // The runs of days ago are on the runs page over their span.
  await open(page, `/runs?from=${iso(twoDaysAgo - 4 * HOUR)}&to=${iso(twoDaysAgo + HOUR)}`);
  expect(await listed(page)).toEqual([1, 2, 3, 4].map((id) => `${OLD_INSTANCE}/${id}`));
  const runsSent = await (await page.request.get(page.url())).text();
  expect(runsSent).toContain(`data-instance="${OLD_INSTANCE}"`);
  const started = page.locator(`tr[data-run="1"] td.when time`);
  await expect(started).toHaveAttribute('datetime', new Date(twoDaysAgo).toISOString());
  // Sent in UTC, shown on the reader's clock once hydrated, and back in UTC with the toggle.
  expect(runsSent).toContain(`>${utc(twoDaysAgo)}</time>`);
  await expect(started).toHaveText(local(twoDaysAgo));
  await expect(started).toHaveAttribute('title', `${local(twoDaysAgo)} UTC+05:30 · ${utc(twoDaysAgo)}`);
  await page.locator('[data-pref="times"]').selectOption('utc');
  await expect(started).toHaveText(utc(twoDaysAgo));
});

test('the runs page filters by task and outcome, and a reload shows the same', async ({ page }) => {
  const problems: string[] = [];
  page.on('console', (m) => {
    // A page answered 400 on purpose is logged as a failed load.
    const expected = m.text().startsWith('Failed to load resource');
    if ((m.type() === 'error' || m.type() === 'warning') && !expected) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  await logIn(page, OPERATOR_TOKEN, BASE);
  await open(page, '/');
  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await expect(page).toHaveURL(`${BASE}/runs`);
  await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();

  await page.getByLabel('Task').fill('health_check');
  await page.getByLabel('Outcome').selectOption('failed');
  await page.getByRole('button', { name: 'Show runs' }).click();
  // The form's empty fields are left out: the URL says what was asked.
  await expect(page).toHaveURL(`${BASE}/runs?task=health_check&outcome=failed`);
  const rows = page.locator('table.runs-list tbody tr');
  await expect(rows.first()).toBeVisible();
  const shown = await listed(page);
  expect(shown).toContain(`${OLD_INSTANCE}/1`);
  expect(shown).toContain(`${OLD_INSTANCE}/4`);
  expect(shown).not.toContain(`${OLD_INSTANCE}/2`);
  for (const row of await rows.all()) {
    await expect(row).toHaveAttribute('data-task', 'health_check');
    await expect(row).toHaveAttribute('data-outcome', 'failed');
  }
  const failure = page.locator(`tr[data-instance="${OLD_INSTANCE}"][data-run="4"] td[data-failure]`);
  await expect(failure).toHaveText('slots_exhausted');
  // Failed as the dashboard colours it.
  await expect(page.locator(`tr[data-instance="${OLD_INSTANCE}"][data-run="4"] td.outcome`)).toHaveCSS(
    'color',
    await colourOf(page, '--crit'),
  );

  await page.reload();
  await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByLabel('Task')).toHaveValue('health_check');
  await expect(page.getByLabel('Outcome')).toHaveValue('failed');
  expect(await listed(page)).toEqual(shown);

  // A filter the server refuses is named beside the form, with a 400.
  await page.getByLabel('Task').fill('Health Check');
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/runs?task=Health+Check&outcome=failed`),
    page.getByRole('button', { name: 'Show runs' }).click(),
  ]);
  expect(response.status()).toBe(400);
  await expect(page.locator('#filter-error')).toContainText('task: "Health Check" is not a name');
  await expect(page.getByLabel('Task')).toHaveAttribute('aria-invalid', 'true');
  // Hydrated without a complaint.
  await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();
  expect(problems).toEqual([]);
});

test("a run's page shows each attempt, its error, its delay and its leases", async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, BASE);
  await open(page, `/runs?task=health_check&outcome=failed&instance=${OLD_INSTANCE}`);
  await page.locator('tr[data-run="1"]').getByRole('link', { name: /Details/ }).click();
  await expect(page).toHaveURL(`${BASE}/runs/${OLD_INSTANCE}/1`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Run 1 of health_check');
  await expect(page.locator('.run-summary dd.outcome')).toHaveText('failed (acquire_timeout)');
  const first = page.locator('li.attempt[data-attempt="1"]');
  await expect(first).toContainText('Failed (acquire_timeout): no connection within 5 s');
  await expect(first).toContainText('Then waited 2.0 s before the next attempt.');
  await expect(first.locator('tr[data-lease="901"] td')).toHaveText(['#901', 'pid 4242', '1.5 s']);
  await expect(page.locator('li.attempt[data-attempt="2"]')).toContainText('It held no lease.');

  // A run of this server's, as it was recorded: its backend on the real server.
  const done = await act({ action: 'run_now', task: 'health_check' });
  const runId = done.details.run_id;
  await expect(async () => {
    await open(page, '/runs?task=health_check');
    await expect(page.locator(`tr[data-run="${runId}"]:not([data-instance="${OLD_INSTANCE}"])`)).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  await page.locator(`tr[data-run="${runId}"]:not([data-instance="${OLD_INSTANCE}"])`).getByRole('link', { name: /Details/ }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Run ${runId} of health_check`);
  await expect(page.locator('li.attempt[data-attempt="1"]')).toContainText('No error.');
  await expect(page.locator('li.attempt[data-attempt="1"] tr[data-lease] td').nth(1)).toHaveText(/^pid \d+$/);

  // A run not there is a 404 that says where to look.
  const missing = await open(page, `/runs/${OLD_INSTANCE}/99`);
  expect(missing.status()).toBe(404);
  await expect(page.locator('[data-banner="missing"]')).toContainText(`No run 99 of instance ${OLD_INSTANCE} in the history.`);
});

test('after a restart the runs and the audit entries from before it are there', async ({ page }) => {
  const done = await act({ action: 'run_now', task: 'status_transitions' });
  const runId = done.details.run_id;
  await act({ action: 'pause', task: 'auction_monitor' });
  // The running server's instance, from a run it wrote.
  let instance = '';
  await expect(async () => {
    const response = await fetch(`${BASE}/api/admin/runs?task=status_transitions&limit=500`, {
      headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    const runs: { instance: string; run_id: number; trigger: string }[] = await response.json();
    const run = runs.find((r) => r.run_id === runId && r.trigger === 'manual' && r.instance !== OLD_INSTANCE);
    expect(run).toBeDefined();
    instance = run!.instance;
  }).toPass({ timeout: 30_000 });

  await server.remove();
  server = newServer();
  await server.start();

  await logIn(page, OPERATOR_TOKEN, BASE);
  await open(page, `/runs?instance=${instance}`);
  await expect(page.locator(`tr[data-instance="${instance}"][data-run="${runId}"]`)).toHaveCount(1);
  await expect(page.locator(`tr[data-instance="${instance}"][data-run="${runId}"] th`)).toContainText('run now');
  await open(page, '/audit?action=pause');
  const entry = page.locator('table.audit tbody tr').filter({ hasText: 'auction_monitor paused' });
  await expect(entry).toHaveCount(1);
  await expect(entry.locator('td').nth(1)).toHaveText('operator');
  await act({ action: 'resume', task: 'auction_monitor' });
});

test('the audit log filters by action and who, and pages back and forth', async ({ page }) => {
  for (let i = 0; i < 3; i++) {
    await act({ action: 'pause', task: 'auction_monitor' });
    await act({ action: 'resume', task: 'auction_monitor' });
  }
  await logIn(page, OPERATOR_TOKEN, BASE);
  await open(page, '/');
  await page.getByRole('link', { name: 'Search the audit log' }).click();
  await expect(page).toHaveURL(`${BASE}/audit`);

  await page.getByLabel('Action').fill('pause');
  await page.getByLabel('Who').selectOption('operator');
  await page.getByRole('button', { name: 'Show entries' }).click();
  await expect(page).toHaveURL(`${BASE}/audit?action=pause&actor=operator`);
  const rows = page.locator('table.audit tbody tr');
  await expect(rows.first()).toBeVisible();
  for (const row of await rows.all()) {
    await expect(row.locator('td').nth(2)).toContainText('pause');
    await expect(row).toHaveAttribute('data-actor', 'operator');
  }
  const pauses = await rows.count();
  expect(pauses).toBeGreaterThanOrEqual(3);

  // Two a page: every older one follows, with the same filters; the newest come back.
  await open(page, '/audit?action=pause&actor=operator&limit=2');
  await expect(rows).toHaveCount(2);
  // The entries as written, less the words of their times (relative ones change as time passes).
  const entries = () => rows.evaluateAll((r) => r.map((row) => row.outerHTML.replace(/>[^<]*<\/time>/, '></time>')));
  const first = await entries();
  let seen = 0;
  for (let pages = 1; ; pages++) {
    expect(pages).toBeLessThan(10);
    const count = await rows.count();
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(2);
    for (const row of await rows.all()) await expect(row.locator('td').nth(2)).toContainText('pause');
    seen += count;
    const older = page.getByRole('link', { name: 'Older entries' });
    if ((await older.count()) === 0) break;
    await older.click();
    await expect(page).toHaveURL(/\/audit\?action=pause&actor=operator&limit=2&before=\d+$/);
  }
  expect(seen).toBe(pauses);
  await page.getByRole('link', { name: 'Newest' }).click();
  await expect(page).toHaveURL(`${BASE}/audit?action=pause&actor=operator&limit=2`);
  expect(await entries()).toEqual(first);
  // The form keeps the page size.
  await page.getByLabel('Who').selectOption('');
  await page.getByRole('button', { name: 'Show entries' }).click();
  await expect(page).toHaveURL(`${BASE}/audit?action=pause&limit=2`);
  await expect(rows).toHaveCount(2);

  // A refused filter, with a 400.
  const refused = await open(page, '/audit?actor=root');
  expect(refused.status()).toBe(400);
  await expect(page.locator('#filter-error')).toContainText('actor: "root" is not one of viewer, operator, system');
});
