import { expect, test } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN, VIEWER_TOKEN } from '../playwright.config';

const status = '/api/admin/background-jobs/status';

test.describe.configure({ mode: 'serial' });

test('a leaking task shows as a stale lease and as a recommendation', async ({ page }) => {
  await logIn(page);
  const stale = page.locator('table.leases tr.stale[data-task="leaky_report"]');
  await expect(stale).toBeVisible({ timeout: 30_000 });
  await expect(stale).toContainText('STALE');
  await expect(stale).toContainText('#');
  const advice = page.locator('[data-recommendation="stale_lease:leaky_report"]');
  await expect(advice).toBeVisible();
  await expect(advice).toContainText('WARNING');
  await expect(advice).toContainText('held by leaky_report past the lease timeout');
  await expect(page.locator('[data-metric="stale"] .value')).not.toHaveText('0');
});

test('cleanup shows its preview, then acts on confirmation', async ({ page }) => {
  await logIn(page);
  await expect(page.locator('table.leases tr.stale[data-task="leaky_report"]')).toBeVisible({ timeout: 30_000 });
  await page.locator('[data-control="cleanup"]').click();
  const preview = page.locator('[data-preview="cleanup"]');
  await expect(preview).toContainText('Cleanup preview: would revoke 1 lease held by leaky_report');
  await expect(page.locator('table.leases tr.stale')).toHaveCount(1); // nothing done yet
  await preview.getByRole('button', { name: 'Confirm cleanup' }).click();
  // The result shows by the control panel, and is read out by the live region.
  await expect(page.locator('.controls [data-feedback="ok"]')).toContainText('Cleanup: revoked 1 lease held by leaky_report');
  await expect(page.getByRole('status')).toContainText('Cleanup: revoked 1 lease held by leaky_report');
  await expect(preview).toHaveCount(0);
  await expect(page.locator('table.leases tr.stale')).toHaveCount(0);
  // The action is in the audit log.
  await expect(page.locator('table.audit tbody tr').first()).toContainText('cleanup');
});

test('emergency cleanup shows its preview, then acts on confirmation', async ({ page }) => {
  await logIn(page);
  await page.locator('[data-control="emergency_cleanup"]').click();
  const preview = page.locator('[data-preview="emergency_cleanup"]');
  await expect(preview).toContainText(/Emergency cleanup preview: would revoke \d+ leases?/);
  await expect(preview).toContainText('would close');
  await preview.getByRole('button', { name: 'Cancel' }).click();
  await expect(preview).toHaveCount(0);
  await page.locator('[data-control="emergency_cleanup"]').click();
  await page.locator('[data-preview="emergency_cleanup"]').getByRole('button', { name: 'Confirm emergency cleanup' }).click();
  await expect(page.locator('.controls [data-feedback="ok"]')).toContainText(/Emergency cleanup: revoked \d+ leases?/);
});

test('a change made through the API appears within two polls', async ({ page, request }) => {
  await logIn(page);
  const row = page.locator('tr[data-task="auction_monitor"] td[data-state]');
  await expect(row).not.toHaveText('paused');
  const response = await request.post(status, {
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
    data: { action: 'pause', task: 'auction_monitor' },
  });
  expect(response.ok()).toBeTruthy();
  // Polls come every second here: two polls and a little.
  await expect(row).toHaveText('paused', { timeout: 2_500 });
  await request.post(status, {
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
    data: { action: 'resume', task: 'auction_monitor' },
  });
  await expect(row).not.toHaveText('paused', { timeout: 2_500 });
});

test('a viewer sees the controls disabled, with the reason', async ({ page }) => {
  await logIn(page, VIEWER_TOKEN);
  await expect(page.locator('[data-readonly]')).toContainText('Read-only');
  for (const control of ['start', 'stop', 'cleanup', 'emergency_cleanup']) {
    await expect(page.locator(`[data-control="${control}"]`)).toBeDisabled();
  }
  await expect(page.getByRole('button', { name: 'Run health_check now' })).toBeDisabled();
});

test('stop previews the runs it would cancel, then stops on confirmation, and start starts', async ({ page }) => {
  await logIn(page);
  const scheduler = page.locator('[data-scheduler]');
  await expect(scheduler).toHaveText('running');
  // The leaky task holds its connection for a minute: a run in flight to name.
  await expect(page.locator('table.leases tr[data-task="leaky_report"]')).toHaveCount(1, { timeout: 30_000 });
  await page.locator('[data-control="stop"]').click();
  const preview = page.locator('[data-preview="stop"]');
  await expect(preview).toContainText(
    /^Stop preview: would stop the scheduler; \d+ run\(s\) in flight \((\w+ run \d+(, )?)+\) get 10 s to finish, then are cancelled/,
  );
  await expect(preview).toContainText('leaky_report run');
  // Cancel changes nothing.
  await preview.getByRole('button', { name: 'Cancel' }).click();
  await expect(preview).toHaveCount(0);
  await expect(scheduler).toHaveText('running');

  await page.locator('[data-control="stop"]').click();
  await page.locator('[data-preview="stop"]').getByRole('button', { name: 'Confirm stop' }).click();
  // While runs in flight get their 10 s, the panel says it is working, then what happened.
  const feedback = page.locator('.controls [data-feedback]');
  await expect(feedback).toHaveText('Working…');
  await expect(feedback).toHaveText(/^Stop: scheduler stopped: \d+ run\(s\) finished, [1-9]\d* cancelled at the deadline$/, { timeout: 20_000 });
  await expect(feedback).toBeInViewport();
  await expect(scheduler).toHaveText('stopped');
  await page.locator('[data-control="start"]').click();
  await expect(scheduler).toHaveText('running');
  await expect(feedback).toHaveText(/^Start: /);
});

test.describe('a server that goes away and comes back', () => {
  const server = new ExtraServer(3218);
  test.afterAll(() => server.remove());

  test('the banner shows while the server is down and clears when it is back', async ({ page }) => {
    await server.start();
    await logIn(page, OPERATOR_TOKEN, server.base);
    const banner = page.locator('[data-banner="unreachable"]');
    await expect(banner).toHaveCount(0);
    await server.stop();
    await expect(banner).toBeVisible({ timeout: 5_000 });
    await expect(banner).toContainText('The server cannot be reached');
    // The last figures stay on screen.
    await expect(page.locator('[data-metric="total"] .value')).toHaveText(/^\d+$/);
    await server.start();
    await expect(banner).toHaveCount(0, { timeout: 10_000 });
  });
});
