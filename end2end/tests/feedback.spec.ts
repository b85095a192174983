import { expect, test, type Locator, type Page } from '@playwright/test';
import { logIn } from './login';
import { contrast } from './measure';

/** The vertical distance between two elements, in pixels (0 when they overlap). */
async function distance(a: Locator, b: Locator): Promise<number> {
  const [x, y] = [(await a.boundingBox())!, (await b.boundingBox())!];
  return Math.max(0, y.y - (x.y + x.height), x.y - (y.y + y.height));
}

test('a task action says what happened in its own row, in view, and aloud', async ({ page }) => {
  await logIn(page);
  const row = page.locator('tr[data-task="health_check"]');
  const pause = row.getByRole('button', { name: 'Pause health_check' });
  await pause.scrollIntoViewIfNeeded();
  await pause.click();
  const feedback = row.locator('[data-feedback="ok"]');
  await expect(feedback).toHaveText('Pause: health_check paused');
  await expect(feedback).toBeInViewport();
  expect(await distance(feedback, row.locator('[data-action="pause_resume"]'))).toBeLessThan(40);
  await expect(page.getByRole('status')).toHaveText('Pause: health_check paused');
  // Only there: not by the panel, not in another row.
  await expect(page.locator('[data-feedback]')).toHaveCount(1);
  // Focus stays on the button, now Resume, for the next key press.
  const resume = row.getByRole('button', { name: 'Resume health_check' });
  await expect(resume).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(row.locator('[data-feedback="ok"]')).toHaveText('Resume: health_check resumed');
  await expect(row.locator('td[data-state]')).not.toHaveText('paused');

  const other = page.locator('tr[data-task="auction_monitor"]');
  await other.getByRole('button', { name: 'Run auction_monitor now' }).click();
  await expect(other.locator('[data-feedback]')).toHaveText(/^Run now: /);
  await expect(row.locator('[data-feedback]')).toHaveCount(0);
});

test('a preview takes focus, Escape closes it and focus returns to the button that opened it', async ({ page }) => {
  await logIn(page);
  const opener = page.locator('[data-control="emergency_cleanup"]');
  await opener.focus();
  await page.keyboard.press('Enter');
  const preview = page.locator('[data-preview="emergency_cleanup"]');
  await expect(preview).toBeVisible();
  const focusedInPreview = () =>
    page.evaluate(() => document.activeElement?.closest('[data-preview]')?.getAttribute('data-preview') ?? null);
  await expect.poll(focusedInPreview).toBe('emergency_cleanup');
  await page.keyboard.press('Tab');
  await expect(preview.getByRole('button', { name: 'Confirm emergency cleanup' })).toBeFocused();
  await page.keyboard.press('Escape');
  await expect(preview).toHaveCount(0);
  await expect(opener).toBeFocused();

  // Cancel, reached by keyboard, does the same.
  await page.keyboard.press('Enter');
  await expect.poll(focusedInPreview).toBe('emergency_cleanup');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await expect(preview.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(preview).toHaveCount(0);
  await expect(opener).toBeFocused();

  // Confirmed, the result shows by the panel and focus is back on the button.
  await page.keyboard.press('Enter');
  await expect.poll(focusedInPreview).toBe('emergency_cleanup');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await expect(page.locator('.controls [data-feedback="ok"]')).toContainText(/^Emergency cleanup: revoked \d+ leases?/);
  await expect(opener).toBeFocused();
});

/** The focused element's ring colour, its own background and the page's. */
function ring(page: Page) {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement;
    const style = getComputedStyle(el);
    return {
      visible: el.matches(':focus-visible'),
      color: style.outlineColor,
      width: parseFloat(style.outlineWidth),
      style: style.outlineStyle,
      background: style.backgroundColor,
      page: getComputedStyle(document.documentElement).backgroundColor,
    };
  });
}

test('the focus ring stands out at least 3:1 against the page and the button', async ({ page }) => {
  await logIn(page);
  const check = async (what: string) => {
    const r = await ring(page);
    expect(r.visible, what).toBe(true);
    expect(r.style, what).toBe('solid');
    expect(r.width, what).toBeGreaterThanOrEqual(2);
    expect(contrast(r.color, r.page), `${what} against the page`).toBeGreaterThanOrEqual(3);
    // A transparent (quiet) button shows the page behind it.
    const own = r.background === 'rgba(0, 0, 0, 0)' ? r.page : r.background;
    expect(contrast(r.color, own), `${what} against the button`).toBeGreaterThanOrEqual(3);
    return contrast(r.color, own);
  };
  await page.locator('[data-control="cleanup"]').focus();
  await check('a blue button');
  await page.getByRole('button', { name: 'Log out' }).focus();
  await check('a quiet button');
  await page.locator('[data-control="cleanup"]').press('Enter');
  const confirm = page.getByRole('button', { name: 'Confirm cleanup' });
  await confirm.focus();
  await check('a red button');
  await page.keyboard.press('Escape');
});
