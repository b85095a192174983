import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { clockIn, BROWSER_ZONE } from './zone';
import { OPERATOR_TOKEN, VIEWER_TOKEN } from '../playwright.config';

// Read replicas as an operator sees them, against the real PostgreSQL server: the release
// server runs on one database with two replicas, a second database on the same server (not in
// recovery, so its probe answers with lag 0) and an address nobody listens on. The Databases
// section shows a card for each, the unreachable one out of rotation and why; each card's
// emergency cleanup previews and acts on its own database only.

const PG = process.env.LEASEWATCH_TEST_PG_HOST ?? '127.0.0.1';
const PRIMARY = 'leasewatch_e2e_databases';
const REPLICA = 'leasewatch_e2e_databases_replica';
const UNREACHABLE = 'postgres://postgres@127.0.0.1:1/none';

const server = new ExtraServer(3229, {
  DATABASE_URL: `postgres://postgres@${PG}:5432/${PRIMARY}`,
  DATABASE_REPLICA_URLS: `postgres://postgres@${PG}:5432/${REPLICA},${UNREACHABLE}`,
  LEASEWATCH_VIEWER_TOKEN: VIEWER_TOKEN,
});

/** One SQL statement through psql as the test's own superuser. */
function sql(statement: string) {
  execFileSync('psql', [`host=${PG} user=postgres dbname=postgres`, '-XAtqc', statement], {
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  });
}

function dropDatabases() {
  for (const name of [PRIMARY, REPLICA]) sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** A database's card, by its name. */
const card = (page: Page, target: string) => page.locator(`li.database[data-database="${target}"]`);

test.describe.configure({ mode: 'serial', timeout: 90_000 });

test.beforeAll(async () => {
  dropDatabases();
  for (const name of [PRIMARY, REPLICA]) sql(`CREATE DATABASE ${name}`);
  await server.start();
});

test.afterAll(async () => {
  await server.remove();
  dropDatabases();
});

test('each database has a card: the unreachable replica out of rotation, and why', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const section = page.getByRole('region', { name: 'Databases' });
  await expect(section).toBeVisible();
  // A list of cards, each named by its heading, the primary first.
  const cards = section.getByRole('list').first().getByRole('listitem');
  await expect(cards).toHaveCount(3);
  await expect(cards.first()).toHaveAttribute('data-database', 'primary');
  for (const target of ['primary', 'replica-1', 'replica-2']) {
    await expect(section.getByRole('listitem', { name: target })).toBeVisible();
  }

  const primary = card(page, 'primary');
  await expect(primary.locator('.rotation')).toContainText('In rotation since');
  await expect(primary.locator('[data-fact="lag"]')).toHaveText('0.0 s');
  await expect(primary).toContainText(`127.0.0.1:5432/${PRIMARY}`);
  await expect(primary.locator('[data-fact="pool"]')).toContainText(/^open \d+ · idle \d+ · active \d+ · limit \d+ \(max \d+\)$/);

  const replica = card(page, 'replica-1');
  await expect(replica).toHaveAttribute('data-rotation', 'in');
  await expect(replica.locator('.rotation')).toContainText('In rotation since');
  await expect(replica.locator('[data-fact="lag"]')).toHaveText('0.0 s');
  await expect(replica).toContainText(`127.0.0.1:5432/${REPLICA}`);
  await expect(replica.locator('[data-fact="bans"]')).toHaveText('0');

  const down = card(page, 'replica-2');
  await expect(down).toHaveAttribute('data-rotation', 'out');
  await expect(down.locator('.rotation strong')).toHaveText('Out of rotation');
  await expect(down.locator('[data-out-reason]')).toHaveText(/^unreachable: /);
  await expect(down.locator('[data-fact="lag"]')).toHaveText('not read');
  await expect(down).toContainText('127.0.0.1:1/none');
  // Since when, on the reader's clock (the browser's zone, not UTC).
  const since = down.locator('.rotation time');
  const iso = (await since.getAttribute('datetime'))!;
  await expect(since).toHaveText(clockIn(iso, BROWSER_ZONE));

  // The replica that answered its first probe joined the rotation: a recovery in the list.
  const joined = section.locator('table.rotation-events tr[data-target="replica-1"][data-rotation="in"]');
  await expect(joined).toContainText('put in rotation');

  // The lease table says which database each lease is on.
  await expect(page.locator('table.leases thead th')).toContainText(['Lease', 'Task', 'Run', 'Target', 'Backend', 'Held', 'State']);
  await expect(page.locator('table.leases tbody tr[data-target="primary"]').first()).toBeAttached({ timeout: 30_000 });
});

test("a card's emergency cleanup previews and acts on its own database only", async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const replica = card(page, 'replica-1');
  const opener = replica.getByRole('button', { name: 'Emergency cleanup of replica-1…' });
  await opener.click();
  const preview = replica.locator('[data-preview="emergency_cleanup"]');
  await expect(preview).toHaveAttribute('data-preview-target', 'replica-1');
  await expect(preview).toHaveAccessibleName('Emergency cleanup of replica-1 preview');
  await expect(preview).toContainText(/^Emergency cleanup of replica-1 preview: would revoke \d+ leases?/);
  // Only here: no other card, nor the panel, opened one.
  await expect(page.locator('[data-preview]')).toHaveCount(1);
  await expect(preview.getByRole('button', { name: 'Confirm emergency cleanup of replica-1' })).toBeVisible();
  // It keeps the focus across polls (every second here): nothing rebuilds it meanwhile.
  const inPreview = () => page.evaluate(() => !!document.activeElement?.closest('[data-preview-target="replica-1"]'));
  await expect.poll(inPreview).toBe(true);
  await page.waitForTimeout(2_500);
  expect(await inPreview()).toBe(true);
  // Escape closes it and gives focus back to the card's button.
  await page.keyboard.press('Escape');
  await expect(preview).toHaveCount(0);
  await expect(opener).toBeFocused();

  // The panel's emergency cleanup acts on every database, and says so; closed, focus goes back
  // to the panel's button, not to a card's.
  const panel = page.locator('.controls [data-control="emergency_cleanup"]');
  await panel.click();
  const every = page.locator('.controls [data-preview="emergency_cleanup"]');
  await expect(every).toContainText('Emergency cleanup of every database preview:');
  await expect(every).not.toHaveAttribute('data-preview-target');
  await every.getByRole('button', { name: 'Cancel' }).click();
  await expect(panel).toBeFocused();

  // Confirmed on the unreachable replica: done there, audited with its target.
  const down = card(page, 'replica-2');
  await down.getByRole('button', { name: 'Emergency cleanup of replica-2…' }).click();
  await down.getByRole('button', { name: 'Confirm emergency cleanup of replica-2' }).click();
  await expect(down.locator('[data-feedback="ok"]')).toContainText(/^Emergency cleanup of replica-2: revoked \d+ leases?/);
  await expect(page.getByRole('status')).toContainText('Emergency cleanup of replica-2: ');
  const audited = page.locator('table.audit tbody tr', { hasText: 'emergency cleanup' }).first();
  await expect(audited).toContainText('"target":"replica-2"');
  await expect(audited).toHaveAttribute('data-outcome', 'ok');
});

test('a viewer sees every database, its cleanups disabled', async ({ page }) => {
  await logIn(page, VIEWER_TOKEN, server.base);
  await expect(page.locator('li.database')).toHaveCount(3);
  for (const target of ['primary', 'replica-1', 'replica-2']) {
    await expect(card(page, target).getByRole('button', { name: `Emergency cleanup of ${target}…` })).toBeDisabled();
  }
});

for (const theme of ['light', 'dark'] as const) {
  test(`the Databases section, a replica out and a preview open, passes axe in the ${theme} theme`, async ({ page }) => {
    await page.context().addCookies([{ name: 'leasewatch_theme', value: theme, url: server.base }]);
    await logIn(page, OPERATOR_TOKEN, server.base);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await expect(card(page, 'replica-2')).toHaveAttribute('data-rotation', 'out');
    await card(page, 'replica-1').getByRole('button', { name: 'Emergency cleanup of replica-1…' }).click();
    await expect(card(page, 'replica-1').locator('[data-preview]')).toBeVisible();
    const results = await new AxeBuilder({ page }).analyze();
    const blocking = results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `  ${n.target.join(' ')}`).join('\n')}`);
    expect(blocking, theme).toEqual([]);
    expect(results.passes.length).toBeGreaterThan(10);
    await page.keyboard.press('Escape');
  });
}
