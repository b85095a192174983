import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN } from '../playwright.config';

// An incident: a pool of one connection that the demo's leaky task keeps, so the other tasks'
// acquires time out (critical) and retry after long backoffs, and a periodic cleanup (the
// system's own) revokes the leak every 15 s, so its recommendation clears and is held.
const server = new ExtraServer(3220, {
  DB_MAX_CONNECTIONS: '1',
  DB_MIN_CONNECTIONS: '1',
  DB_CONNECTION_TIMEOUT: '300',
  DEMO_LEAK_HOLD: '120s',
  CLEANUP_INTERVAL: '15s',
  RETRY_BASE_DELAY: '8s',
  RETRY_MAX_DELAY: '600s',
  REC_CLEAR: '60s',
});

test.describe.configure({ mode: 'serial', timeout: 120_000 });
test.beforeAll(() => server.start());
test.afterAll(() => server.remove());

/** The recommendations as listed: severity and whether each is clearing. */
function listed(page: Page) {
  return page.locator('.advice li[data-recommendation]').evaluateAll((items) =>
    items.map((li) => ({
      severity: ['critical', 'warning', 'info'].find((s) => li.classList.contains(s))!,
      clearing: li.hasAttribute('data-cleared-at'),
    })),
  );
}

test('the worst state shows at a glance: summary, cards, tab title and icon', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const summary = page.locator('[data-summary]');
  // The leaky task's first run comes at its first grid point (up to its 20 s interval after
  // start), then the other tasks' acquires time out.
  await expect(summary.locator('[data-worst]')).toHaveAttribute('data-worst', 'critical', { timeout: 45_000 });
  await expect(summary).toHaveText(/^\d+ critical( · \d+ warnings?)?( · \d+ info)?: Acquires are timing out/);
  await expect(summary).toHaveCSS('border-left-color', 'rgb(179, 38, 30)');
  // Above the recommendations, which are in order: what holds, worst first, then what clears.
  const [s, advice] = [(await summary.boundingBox())!, (await page.locator('.advice').boundingBox())!];
  expect(s.y).toBeLessThan(advice.y);
  const order = await listed(page);
  const rank = (a: { severity: string; clearing: boolean }) =>
    (a.clearing ? 3 : 0) + ['critical', 'warning', 'info'].indexOf(a.severity) / 3;
  expect(order.map(rank)).toEqual([...order.map(rank)].sort((a, b) => a - b));

  // The tab: title and icon for the worst that holds.
  await expect(page).toHaveTitle(/^\(!\) \d+ critical( · \d+ warnings?)? · Leasewatch$/);
  await expect(page.locator('link[rel="icon"]')).toHaveAttribute('href', '/favicon-critical.svg');
  expect((await page.request.get(`${server.base}/favicon-critical.svg`)).ok()).toBe(true);
  // The server renders the page with them already.
  const html = await (await page.request.get(`${server.base}/`)).text();
  expect(html).toMatch(/<title>\(!\) \d+ critical( · \d+ warnings?)? · Leasewatch<\/title>/);
  expect(html).toContain('href="/favicon-critical.svg"');

  // A stale lease is a leak: its card is red, not amber.
  const stale = page.locator('[data-metric="stale"]');
  await expect(stale).toHaveAttribute('data-severity', 'critical', { timeout: 90_000 });
  await expect(stale).toHaveCSS('background-color', 'rgb(253, 236, 234)');
  await expect(page.locator('[data-metric="total"]')).not.toHaveAttribute('data-severity');
});

test('a recommendation whose condition cleared shows as clearing, its action off', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  // The periodic cleanup revokes the leak; the recommendation is kept for REC_CLEAR.
  const item = page.locator('[data-recommendation="stale_lease:leaky_report"][data-cleared-at]');
  await expect(item).toBeVisible({ timeout: 90_000 });
  // How long ago it cleared, the instant on hover.
  await expect(item.locator('.cleared')).toHaveText(/^ · cleared (just now|\d+ s ago|1 min ago)$/);
  await expect(item.locator('.cleared time')).toHaveAttribute('title', /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  await expect(item.locator('p')).toHaveText(/^Last seen: .*held by leaky_report/);
  await expect(item.getByRole('button', { name: 'Cleanup…' })).toBeDisabled();
  // Subdued: grey, not its severity's amber.
  await expect(item).toHaveCSS('border-left-color', 'rgb(154, 163, 178)');
  await expect(item).toHaveCSS('color', 'rgb(91, 100, 117)');
  // Listed after what holds; counted apart in the summary, and not in the tab's title.
  const order = await listed(page);
  const firstClearing = order.findIndex((a) => a.clearing);
  expect(order.slice(firstClearing).every((a) => a.clearing)).toBe(true);
  await expect(page.locator('[data-summary]')).toContainText(/· \d+ clearing$/);
  const holding = order.filter((a) => !a.clearing);
  const critical = holding.filter((a) => a.severity === 'critical').length;
  const warnings = holding.filter((a) => a.severity === 'warning').length;
  const parts = [critical && `${critical} critical`, warnings && `${warnings} warning${warnings > 1 ? 's' : ''}`].filter(Boolean);
  if (await item.count()) await expect(page).toHaveTitle(`(!) ${parts.join(' · ')} · Leasewatch`);
});

test('a run waiting to retry says which attempt comes when, and its last error', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const retry = page.locator('tr[data-task] .retry').first();
  await expect(retry).toBeVisible({ timeout: 90_000 });
  await expect(retry).toHaveText(
    /^Retrying: attempt [2-4] of 4, next try at \d{2}:\d{2}:\d{2} \((in \d+ s|due now)\)Last error: \w+: (no connection within \d+ ms|lease revoked)/,
  );
  const row = page.locator('tr[data-task]', { has: page.locator('.retry') }).first();
  await expect(row.locator('td[data-state]')).toHaveText('backoff');
});

test('periodic cleanups are listed as the system’s own', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const entry = page.locator('table.audit tr[data-actor="system"]').first();
  await expect(entry).toBeVisible({ timeout: 90_000 });
  await expect(entry.locator('td').nth(1)).toHaveText('Leasewatch (system)');
  await expect(entry.locator('td').nth(2)).toHaveText('automatic cleanup');
  await expect(entry.locator('td').nth(3)).toHaveText(/^ok: revoked 1 lease held by leaky_report/);
  // Within the last hour: how long ago, the date and time on hover.
  await expect(entry.locator('td.when')).toHaveText(/^(just now|\d+ s ago|1 min ago)$/);
  await expect(entry.locator('td.when time')).toHaveAttribute('title', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\+05:30 · \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
});

test('a recommendation’s action previews and reports next to the recommendation', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const item = page.locator('[data-recommendation="acquire_timeouts"]');
  await item.getByRole('button', { name: 'Emergency cleanup…' }).click();
  const preview = item.locator('[data-preview="emergency_cleanup"]');
  await expect(preview).toContainText(/^Emergency cleanup preview: would revoke/);
  await expect(page.locator('.controls [data-preview]')).toHaveCount(0);
  await expect.poll(() => page.evaluate(() => !!document.activeElement?.closest('[data-recommendation="acquire_timeouts"] [data-preview]'))).toBe(true);
  await preview.getByRole('button', { name: 'Confirm emergency cleanup' }).click();
  const feedback = item.locator('[data-feedback="ok"]');
  await expect(feedback).toContainText(/^Emergency cleanup: revoked \d+ leases?/);
  await expect(feedback).toBeInViewport();
  await expect(page.locator('.controls [data-feedback]')).toHaveCount(0);
});
