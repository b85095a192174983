import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { E2E_ENV, OPERATOR_TOKEN, VIEWER_TOKEN } from '../playwright.config';

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
  await page.getByRole('button', { name: 'Cleanup…', exact: true }).click();
  const preview = page.locator('[data-preview="cleanup"]');
  await expect(preview).toContainText('Cleanup preview: this would revoke 1 lease held by leaky_report');
  await expect(page.locator('table.leases tr.stale')).toHaveCount(1); // nothing done yet
  await preview.getByRole('button', { name: 'Confirm cleanup' }).click();
  await expect(page.getByRole('status')).toContainText('Cleanup: revoked 1 lease held by leaky_report');
  await expect(preview).toHaveCount(0);
  await expect(page.locator('table.leases tr.stale')).toHaveCount(0);
  // The action is in the audit log.
  await expect(page.locator('table.audit tbody tr').first()).toContainText('cleanup');
});

test('emergency cleanup shows its preview, then acts on confirmation', async ({ page }) => {
  await logIn(page);
  await page.getByRole('button', { name: 'Emergency cleanup…', exact: true }).click();
  const preview = page.locator('[data-preview="emergency_cleanup"]');
  await expect(preview).toContainText(/Emergency cleanup preview: this would revoke \d+ leases?/);
  await expect(preview).toContainText('would close');
  await preview.getByRole('button', { name: 'Cancel' }).click();
  await expect(preview).toHaveCount(0);
  await page.getByRole('button', { name: 'Emergency cleanup…', exact: true }).click();
  await page.locator('[data-preview="emergency_cleanup"]').getByRole('button', { name: 'Confirm emergency cleanup' }).click();
  await expect(page.getByRole('status')).toContainText(/Emergency cleanup: revoked \d+ leases?/);
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
  for (const name of ['Start', 'Stop', 'Cleanup…', 'Emergency cleanup…']) {
    await expect(page.getByRole('button', { name, exact: true })).toBeDisabled();
  }
  await expect(page.getByRole('button', { name: 'Run health_check now' })).toBeDisabled();
});

test('stop and start change the scheduler state', async ({ page }) => {
  await logIn(page);
  const scheduler = page.locator('[data-scheduler]');
  await expect(scheduler).toHaveText('running');
  await page.locator('[data-control="stop"]').click();
  // A run in flight gets up to 10 s before it is cancelled.
  await expect(scheduler).toHaveText('stopped', { timeout: 20_000 });
  await expect(page.getByRole('status')).toContainText('Stop: scheduler stopped');
  await page.locator('[data-control="start"]').click();
  await expect(scheduler).toHaveText('running');
});

test.describe('a server that goes away and comes back', () => {
  const port = 3218;
  const base = `http://127.0.0.1:${port}`;
  let dir: string;
  let server: ChildProcess | undefined;

  async function startServer() {
    server = spawn('target/release/leasewatch', ['--demo'], {
      cwd: '..',
      env: {
        ...process.env,
        ...E2E_ENV,
        BIND_ADDR: `127.0.0.1:${port}`,
        DATABASE_URL: `sqlite://${join(dir, 'banner.db')}`,
        LEASEWATCH_OPERATOR_TOKEN: OPERATOR_TOKEN,
        RUST_LOG: 'warn',
      },
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${base}/healthz`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the second server did not start within 10 s');
  }

  async function stopServer() {
    if (!server) return;
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
    server = undefined;
  }

  test.beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'leasewatch-banner-'));
  });
  test.afterAll(async () => {
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the banner shows while the server is down and clears when it is back', async ({ page }) => {
    await startServer();
    await logIn(page, OPERATOR_TOKEN, base);
    const banner = page.locator('[data-banner="unreachable"]');
    await expect(banner).toHaveCount(0);
    await stopServer();
    await expect(banner).toBeVisible({ timeout: 5_000 });
    await expect(banner).toContainText('The server cannot be reached');
    // The last figures stay on screen.
    await expect(page.locator('[data-metric="total"] .value')).toHaveText(/^\d+$/);
    await startServer();
    await expect(banner).toHaveCount(0, { timeout: 10_000 });
  });
});
