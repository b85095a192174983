import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { OPERATOR_TOKEN } from '../playwright.config';

/** Fails the test on any uncaught error or console error (a hydration panic shows up here). */
function watchForErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  return errors;
}

test('the server-rendered page hydrates and reacts to a click', async ({ page }) => {
  const errors = watchForErrors(page);
  await logIn(page);
  await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');

  const asOf = page.locator('.as-of');
  const before = await asOf.getAttribute('data-taken-at');
  expect(before).toBeTruthy();
  // Once hydrated, the data age ticks and the page polls by itself.
  await expect(asOf).toContainText(/updated \d+ s ago/);
  await expect(asOf).not.toHaveAttribute('data-taken-at', before!);

  // Hydrated, the controls work and the note for pages without JavaScript is not shown.
  await expect(page.locator('[data-control="cleanup"]')).toBeEnabled();
  await expect(page.locator('.controls noscript')).toBeHidden();

  const row = page.locator('tr[data-task="health_check"]');
  await row.getByRole('button', { name: 'Pause health_check' }).click();
  await expect(row.locator('td[data-state]')).toHaveText('paused');
  await row.getByRole('button', { name: 'Resume health_check' }).click();
  await expect(row.locator('td[data-state]')).not.toHaveText('paused');
  await expect(page.locator('[data-total="auctions"]')).toHaveText('12');
  expect(errors).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the page is readable with its real data', async ({ page }) => {
    await logIn(page, OPERATOR_TOKEN, '', false);
    await expect(page.getByRole('heading', { name: 'Leasewatch' })).toBeVisible();
    await expect(page.locator('[data-metric="total"] .value')).toHaveText(/^\d+$/);
    await expect(page.locator('[data-metric="utilization"] .detail')).toContainText('of max 20 (min 5)');
    await expect(page.locator('[data-total="auctions"]')).toHaveText('12');
    // The first runs show in the task table once each task's first start (within its 30 s
    // interval in demo mode) has come; without JavaScript only a reload shows them.
    await expect(async () => {
      await page.reload();
      await expect(page.locator('tr[data-task="health_check"] .last-run')).toHaveAttribute('data-outcome', 'succeeded', { timeout: 1_000 });
    }).toPass({ timeout: 45_000 });
    await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'false');
  });

  test('the controls say they need JavaScript and do not pretend to work', async ({ page }) => {
    await logIn(page, OPERATOR_TOKEN, '', false);
    for (const [control, name] of [['start', 'Start'], ['stop', 'Stop…'], ['cleanup', 'Cleanup…'], ['emergency_cleanup', 'Emergency cleanup…']]) {
      await expect(page.locator(`[data-control="${control}"]`)).toHaveText(name);
      await expect(page.locator(`[data-control="${control}"]`)).toBeDisabled();
    }
    await expect(page.getByRole('button', { name: 'Run health_check now' })).toBeDisabled();
    await expect(page.getByRole('button', { name: 'Pause health_check' })).toBeDisabled();
    const note = page.locator('.controls noscript');
    await expect(note).toBeVisible();
    // (Playwright's text matchers skip <noscript>: read its text directly.)
    expect(await note.evaluate((el) => el.textContent)).toMatch(/^The controls need JavaScript/);
    // Logging out is a plain form: it still works.
    await expect(page.getByRole('button', { name: 'Log out' })).toBeEnabled();
  });
});

test('without a session the dashboard sends you to the login page, which logs you in', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login$/);
  // Styled by the dashboard's (hashed) stylesheet: the form lays out as a flex row.
  await expect(page.locator('main.login form')).toHaveCSS('display', 'flex');
  await expect(page.locator('link#leptos')).toHaveAttribute('href', /^\/pkg\/leasewatch\.[\w-]+\.css$/);
  await page.getByLabel('Access token').fill('wrong-token-0000000000');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('That token is not valid.');
  await page.getByLabel('Access token').fill(OPERATOR_TOKEN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');
});

test('built assets have hashed names, are compressed and cached for a year', async ({ page, request }) => {
  await logIn(page);
  const wasm = await page.locator('link[rel="preload"][as="fetch"]').getAttribute('href');
  const css = await page.locator('link#leptos').getAttribute('href');
  expect(wasm).toMatch(/^\/pkg\/leasewatch\.[\w-]+\.wasm$/);
  expect(css).toMatch(/^\/pkg\/leasewatch\.[\w-]+\.css$/);
  for (const path of [wasm!, css!]) {
    const response = await request.get(path, { headers: { 'Accept-Encoding': 'gzip, br' } });
    expect(response.status()).toBe(200);
    expect(response.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(['gzip', 'br']).toContain(response.headers()['content-encoding']);
  }
});
