import { expect, test } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN } from '../playwright.config';

test('an action without a session goes to the login page, and the login comes back', async ({ page, context }) => {
  await logIn(page);
  const polls: number[] = [];
  page.on('response', (r) => {
    if (r.url().endsWith('/api/dashboard')) polls.push(r.status());
  });
  // The session ends (as at logout elsewhere, or expiry): the next request is refused.
  await context.clearCookies();
  await page.locator('tr[data-task="health_check"]').getByRole('button', { name: 'Pause health_check' }).click();
  await expect(page).toHaveURL(/\/login$|\/login\?/);
  await expect(page.locator('[data-banner="unreachable"]')).toHaveCount(0);
  await page.getByLabel('Access token').fill(OPERATOR_TOKEN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');
  // Nothing was paused: the refused click did nothing.
  await expect(page.locator('tr[data-task="health_check"] td[data-state]')).not.toHaveText('paused');
  // It did not keep polling 401s before leaving.
  expect(polls.filter((s) => s === 401).length).toBeLessThanOrEqual(2);
});

test('the login returns only to a path on this site', async ({ playwright, baseURL }) => {
  const api = await playwright.request.newContext({ baseURL, maxRedirects: 0 });
  // A page asked for without a session sends the browser to log in, and names where it was.
  const page = await api.get('/?from=bookmark');
  expect(page.status()).toBe(303);
  expect(page.headers()['location']).toBe('/login?next=%2F%3Ffrom%3Dbookmark');
  const login = (next: string) =>
    api.post('/login', {
      headers: { Origin: baseURL! },
      form: { token: OPERATOR_TOKEN, next },
    });
  const ok = await login('/?from=expired#tasks');
  expect(ok.status()).toBe(303);
  expect(ok.headers()['location']).toBe('/?from=expired#tasks');
  for (const hostile of ['//evil.example', 'https://evil.example', '/\\evil.example', '/\\/evil.example', `/${'a'.repeat(600)}`, 'javascript:alert(1)']) {
    const response = await login(hostile);
    expect(response.status(), hostile).toBe(303);
    expect(response.headers()['location'], hostile).toBe('/');
  }
  // The form carries a good `next` on, and drops a hostile one.
  const form = await api.get('/login?next=%2F%3Ftab%3Dtasks');
  expect(await form.text()).toContain('name="next" value="/?tab=tasks"');
  const hostile = await api.get('/login?next=%2F%2Fevil.example');
  expect(await hostile.text()).not.toContain('name="next"');
  await api.dispose();
});

test.describe('a session that expires while the dashboard is open', () => {
  // SESSION_TTL's least value.
  const server = new ExtraServer(3219, { SESSION_TTL: '60s' });
  test.beforeAll(() => server.start());
  test.afterAll(() => server.remove());

  test('goes to the login page, not an outage banner, and back after login', async ({ page }) => {
    test.setTimeout(150_000);
    const statuses: number[] = [];
    page.on('response', (r) => {
      if (r.url().endsWith('/api/dashboard')) statuses.push(r.status());
    });
    // Remembers, across the pages of this tab, whether an outage banner ever showed.
    await page.addInitScript(() => {
      new MutationObserver(() => {
        if (document.querySelector('[data-banner="unreachable"]')) sessionStorage.setItem('outage-shown', 'yes');
      }).observe(document, { subtree: true, childList: true });
    });
    await logIn(page, OPERATOR_TOKEN, server.base);
    await expect(page).toHaveURL(/\/login/, { timeout: 90_000 });
    expect(statuses).toContain(401);
    await expect(page.getByLabel('Access token')).toBeVisible();
    await page.getByLabel('Access token').fill(OPERATOR_TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page).toHaveURL(`${server.base}/`);
    await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.locator('[data-metric="total"] .value')).toHaveText(/^\d+$/);
    expect(await page.evaluate(() => sessionStorage.getItem('outage-shown'))).toBeNull();
  });
});
