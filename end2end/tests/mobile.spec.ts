import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { gap, targets } from './measure';

/** Waits for the tables to be filled, so every control is on the page. */
async function loaded(page: Page) {
  await logIn(page);
  await expect(page.locator('table.tasks tr[data-task]')).toHaveCount(5); // the four built-in tasks and the demo's leak
  await expect(page.locator('[data-control="cleanup"]')).toBeEnabled();
}

test.describe('on a phone (390×844, touch)', () => {
  test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });

  test('every control is reachable without scrolling sideways, 44 px and apart', async ({ page }) => {
    await loaded(page);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth)).toBe(true);
    const all = await targets(page);
    // Start, stop, two cleanups, log out, and run now and pause for each of the five tasks.
    expect(all.length).toBeGreaterThanOrEqual(13);
    for (const t of all) {
      expect(t.left, t.name).toBeGreaterThanOrEqual(0);
      expect(t.right, t.name).toBeLessThanOrEqual(390);
      expect(t.bottom - t.top, t.name).toBeGreaterThanOrEqual(44);
      expect(t.right - t.left, t.name).toBeGreaterThanOrEqual(44);
    }
    for (const [i, a] of all.entries()) {
      for (const b of all.slice(i + 1)) {
        expect(gap(a, b), `${a.name} / ${b.name}`).toBeGreaterThanOrEqual(8);
      }
    }
  });

  test('a task is a card whose buttons sit on a line of their own, in view', async ({ page }) => {
    await loaded(page);
    const row = page.locator('tr[data-task="auction_monitor"]');
    const run = row.getByRole('button', { name: 'Run auction_monitor now' });
    const pause = row.getByRole('button', { name: 'Pause auction_monitor' });
    await run.scrollIntoViewIfNeeded();
    await expect(run).toBeInViewport({ ratio: 1 });
    await expect(pause).toBeInViewport({ ratio: 1 });
    const [r, p, state] = [(await run.boundingBox())!, (await pause.boundingBox())!, (await row.locator('td[data-state]').boundingBox())!];
    expect(r.y).toBeGreaterThan(state.y + state.height - 1); // below the task's details
    expect(Math.abs(r.y - p.y)).toBeLessThan(2); // side by side
    // Each value says what it is.
    await expect(row.locator('td[data-state]')).toHaveCSS('display', 'block');
    expect(await row.locator('td[data-state]').evaluate((el) => getComputedStyle(el, '::before').content)).toBe('"State: "');
    // A tap acts, and says so in the card.
    await pause.tap();
    await expect(row.locator('[data-feedback="ok"]')).toHaveText('Pause: auction_monitor paused');
    await expect(row.locator('[data-feedback="ok"]')).toBeInViewport();
    await row.getByRole('button', { name: 'Resume auction_monitor' }).tap();
    await expect(row.locator('[data-feedback="ok"]')).toHaveText('Resume: auction_monitor resumed');
  });
});

test('on a laptop (1280×800) targets are at least 24 px and apart', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await loaded(page);
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth)).toBe(true);
  const all = await targets(page);
  for (const t of all) {
    expect(t.bottom - t.top, t.name).toBeGreaterThanOrEqual(24);
    expect(t.right - t.left, t.name).toBeGreaterThanOrEqual(24);
  }
  for (const [i, a] of all.entries()) {
    for (const b of all.slice(i + 1)) {
      expect(gap(a, b), `${a.name} / ${b.name}`).toBeGreaterThanOrEqual(4);
    }
  }
});
