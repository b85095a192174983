import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { OPERATOR_TOKEN, VIEWER_TOKEN } from '../playwright.config';

// axe-core on every page a person sees, in both themes: any serious or critical violation
// (contrast, names, labels, landmarks, ...) fails. Lesser ones are listed in the test's output.

const themes = ['light', 'dark'] as const;
type Theme = (typeof themes)[number];

/** Chooses `theme` as the toggle does: the cookie the server renders `<html data-theme>` from. */
async function chooseTheme(page: Page, baseURL: string, theme: Theme) {
  await page.context().addCookies([{ name: 'leasewatch_theme', value: theme, url: baseURL }]);
}

/** Runs axe on the page; fails on serious and critical violations, naming each with its elements. */
async function check(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).analyze();
  const describe = (v: (typeof results.violations)[number]) =>
    `${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `  ${n.target.join(' ')}: ${n.failureSummary?.split('\n').slice(1).join(' ')}`).join('\n')}`;
  const blocking = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = results.violations.filter((v) => !blocking.includes(v));
  if (minor.length) console.log(`${what}: minor findings\n${minor.map(describe).join('\n')}`);
  expect(blocking.map(describe), what).toEqual([]);
  // It looked at the page, not at an empty shell.
  expect(results.passes.length, what).toBeGreaterThan(10);
}

for (const theme of themes) {
  test.describe(`in the ${theme} theme`, () => {
    test.beforeEach(({ page, baseURL }) => chooseTheme(page, baseURL!, theme));

    test('the operator\'s dashboard, with a stale lease, a preview and charts, passes axe', async ({ page }) => {
      await logIn(page, OPERATOR_TOKEN);
      await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
      // Severity colours on screen: the leaky task's stale lease is a warning and a card.
      await expect(page.locator('table.leases tr.stale')).toHaveCount(1, { timeout: 30_000 });
      await expect.poll(() => page.locator('.chart.pool .point').count(), { timeout: 30_000 }).toBeGreaterThan(1);
      await page.locator('[data-control="cleanup"]').click();
      await expect(page.locator('[data-preview="cleanup"]')).toBeVisible();
      await check(page, `operator, ${theme}`);
      await page.keyboard.press('Escape');
    });

    test('the viewer\'s dashboard, its controls disabled, passes axe', async ({ page }) => {
      await logIn(page, VIEWER_TOKEN);
      await expect(page.locator('[data-readonly]')).toBeVisible();
      await check(page, `viewer, ${theme}`);
    });

    test('the runs, a run\'s, the audit log\'s pages and a refused filter pass axe', async ({ page }) => {
      await logIn(page, OPERATOR_TOKEN);
      // The demo's runs reach the history within seconds (written every 5 s).
      await expect(async () => {
        await page.goto('/runs');
        await expect(page.locator('tr[data-run] a').first()).toBeAttached({ timeout: 1_000 });
      }).toPass({ timeout: 30_000 });
      await expect(page.locator('main[data-hydrated="true"]')).toBeAttached();
      await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
      await check(page, `runs, ${theme}`);
      await page.locator('tr[data-run] a').first().click();
      await expect(page.locator('li.attempt').first()).toBeVisible();
      await check(page, `a run, ${theme}`);
      await page.goto('/audit');
      await expect(page.getByRole('heading', { level: 1 })).toHaveText('Audit log');
      await check(page, `audit log, ${theme}`);
      const refused = await page.goto('/runs?outcome=broken');
      expect(refused?.status()).toBe(400);
      await expect(page.locator('#filter-error')).toBeVisible();
      await check(page, `runs with a refused filter, ${theme}`);
    });

    test('the login page, with an error, passes axe', async ({ page }) => {
      await page.goto('/login');
      await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
      await check(page, `login, ${theme}`);
      await page.getByLabel('Access token').fill('wrong-token-0000000000');
      await page.getByRole('button', { name: 'Log in' }).click();
      await expect(page.getByRole('alert')).toBeVisible();
      await check(page, `login with an error, ${theme}`);
    });
  });
}

test('the not-found page passes axe, in the system\'s dark theme too', async ({ page }) => {
  await logIn(page);
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    const response = await page.goto('/no-such-page');
    expect(response?.status()).toBe(404);
    await check(page, `not found, system ${colorScheme}`);
  }
});
