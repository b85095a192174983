import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { contrast } from './measure';
import { BROWSER_ZONE, clockIn, dateTimeIn } from './zone';

// For the person at 3 a.m.: times in their own zone (UTC on hover, a toggle), a dark theme
// that follows the system or their choice without a flash of the other, and every control
// reachable from the keyboard with a ring that shows where the focus is. The browser runs in
// Asia/Kolkata (UTC+05:30, playwright.config.ts). With SCREENSHOTS=1, the last test writes
// docs/dashboard-dark.png once the demo has run for a minute.

const LIGHT_PAGE = 'rgb(245, 246, 248)';
const DARK_PAGE = 'rgb(17, 19, 24)';

/** The page's background colour. */
const pageColour = (page: Page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor === 'rgba(0, 0, 0, 0)'
  ? getComputedStyle(document.documentElement).backgroundColor
  : getComputedStyle(document.body).backgroundColor);

/** Logs in and waits until the page is mounted: the toggles are on and the chosen zone applied. */
async function ready(page: Page) {
  await logIn(page);
  await expect(page.locator('[data-pref="times"]')).toBeEnabled();
}

/** The focused element, and whether its focus shows: a ring of 2 px or more, or (a chart's point) its tooltip. */
function focused(page: Page) {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement;
    const style = getComputedStyle(el);
    const tip = el.querySelector('.tip');
    const page = getComputedStyle(document.documentElement).backgroundColor;
    return {
      what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${(el.getAttribute('aria-label') ?? el.closest('label')?.textContent ?? el.textContent ?? '').trim().slice(0, 40)}"`,
      selector: {
        skip: el.matches('a.skip-link'),
        times: el.matches('[data-pref="times"]'),
        theme: el.matches('[data-pref="theme"]'),
        logout: el.matches('.masthead button'),
        cleanup: el.matches('[data-control="cleanup"]'),
        runNow: el.matches('tr[data-task="health_check"] [data-action="run_now"]'),
        pause: el.matches('tr[data-task="health_check"] [data-action="pause_resume"]'),
        chartSkip: el.matches('.charts a.skip'),
        point: el.matches('.chart .point'),
      },
      focusVisible: el.matches(':focus-visible'),
      ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 ? style.outlineColor : null,
      page,
      tipShown: tip ? getComputedStyle(tip).display !== 'none' : false,
      size: el.getBoundingClientRect().width * el.getBoundingClientRect().height,
    };
  });
}

type Focused = Awaited<ReturnType<typeof focused>>;

/** Checks the focus shows: a ring at least 3:1 against the page, or a chart point's tooltip. */
function expectVisibleFocus(f: Focused) {
  expect(f.focusVisible, f.what).toBe(true);
  expect(f.size, `${f.what}: on screen`).toBeGreaterThan(4);
  if (f.selector.point) {
    expect(f.tipShown, `${f.what}: its tooltip`).toBe(true);
  } else {
    expect(f.ring, `${f.what}: a ring`).not.toBeNull();
    expect(contrast(f.ring!, f.page), `${f.what}: the ring against the page`).toBeGreaterThanOrEqual(3);
  }
}

for (const theme of ['light', 'dark'] as const) {
  test(`the keyboard alone reaches and works every control, its focus visible (${theme})`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: theme });
    await ready(page);
    await expect(page.locator('table.tasks tr[data-task]')).toHaveCount(5); // the four built-in tasks and the demo's leak
    // From the top of the page, as after loading it.
    const order: string[] = [];
    const seen = new Set<keyof Focused['selector']>();
    for (let i = 0; i < 150 && !seen.has('pause'); i++) {
      const current = await focused(page);
      if (current.selector.chartSkip) {
        // Each chart's points are a tab stop each: its skip link goes past them.
        await page.keyboard.press('Enter');
        // The last one leads to a heading, which takes no focus: Tab goes on from there.
        const next = await focused(page);
        if (next.what === current.what || next.what.startsWith('body')) await page.keyboard.press('Tab');
      } else {
        await page.keyboard.press('Tab');
      }
      const f = await focused(page);
      expectVisibleFocus(f);
      order.push(f.what);
      for (const [key, on] of Object.entries(f.selector)) if (on) seen.add(key as keyof Focused['selector']);
    }
    const at = (key: keyof Focused['selector']) => [...seen].indexOf(key);
    for (const key of ['skip', 'times', 'theme', 'logout', 'cleanup', 'runNow', 'pause'] as const) {
      expect(seen.has(key), `${key} in ${order.join(' → ')}`).toBe(true);
    }
    // In reading order: the skip link first, the header's controls, then the page's.
    expect(order[0]).toMatch(/^a "Skip to content"/);
    expect(at('times')).toBeLessThan(at('theme'));
    expect(at('theme')).toBeLessThan(at('logout'));
    expect(at('logout')).toBeLessThan(at('cleanup'));
    expect(at('cleanup')).toBeLessThan(at('runNow'));
    expect(at('runNow')).toBeLessThan(at('pause'));

    // The task's buttons work from the keyboard, and keep the focus.
    const row = page.locator('tr[data-task="health_check"]');
    await page.keyboard.press('Enter');
    await expect(row.locator('td[data-state]')).toHaveText('paused');
    await expect(row.getByRole('button', { name: 'Resume health_check' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(row.locator('td[data-state]')).not.toHaveText('paused');
    await page.keyboard.press('Shift+Tab');
    await expect(row.getByRole('button', { name: 'Run health_check now' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(row.locator('[data-feedback="ok"]')).toHaveText(/^Run now: /);

    // The skip link goes past the header: the next Tab is in the page's content.
    await page.reload();
    await expect(page.locator('[data-pref="times"]')).toBeEnabled();
    await page.keyboard.press('Tab');
    await expect(page.locator('a.skip-link')).toBeFocused();
    await expect(page.locator('a.skip-link')).toBeInViewport();
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/#content$/);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => !!document.activeElement?.closest('main#content'))).toBe(true);
    expectVisibleFocus(await focused(page));

    // A cleanup previews, confirms and cancels from the keyboard; Escape cancels too.
    const opener = page.locator('[data-control="cleanup"]');
    const preview = page.locator('[data-preview="cleanup"]');
    // The preview comes from the server; the focus moves into it when it opens.
    const open = async () => {
      await page.keyboard.press('Enter');
      await expect(preview).toBeVisible();
      await expect.poll(() => page.evaluate(() => !!document.activeElement?.closest('[data-preview="cleanup"]'))).toBe(true);
    };
    await opener.focus();
    await open();
    await page.keyboard.press('Tab');
    await expect(preview.getByRole('button', { name: 'Confirm cleanup' })).toBeFocused();
    expectVisibleFocus(await focused(page));
    await page.keyboard.press('Tab');
    await expect(preview.getByRole('button', { name: 'Cancel' })).toBeFocused();
    expectVisibleFocus(await focused(page));
    await page.keyboard.press('Enter');
    await expect(preview).toHaveCount(0);
    await expect(opener).toBeFocused();
    await open();
    await page.keyboard.press('Escape');
    await expect(preview).toHaveCount(0);
    await expect(opener).toBeFocused();
    await open();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect(page.locator('.controls [data-feedback="ok"]')).toContainText(/^Cleanup: /);
    await expect(opener).toBeFocused();
  });
}

test('times show in the browser\'s zone with UTC on hover, and the choice of UTC is remembered', async ({ page }) => {
  await ready(page);
  const times = page.locator('[data-pref="times"]');
  await expect(times).toHaveValue('local');
  await expect(times.locator('option[value="local"]')).toHaveText('Local (UTC+05:30)');
  const asOf = page.locator('.as-of time');
  const check = async (zone: 'local' | 'utc') => {
    // Read in one go: polls replace the line every second.
    const { iso, text, title } = await asOf.evaluate((t) => ({ iso: t.getAttribute('datetime')!, text: t.textContent!, title: t.getAttribute('title')! }));
    expect(iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const utc = `${dateTimeIn(iso, 'UTC')} UTC`;
    if (zone === 'local') {
      expect(text).toBe(clockIn(iso, BROWSER_ZONE));
      expect(title).toBe(`${dateTimeIn(iso, BROWSER_ZONE)} UTC+05:30 · ${utc}`);
    } else {
      expect(text).toBe(`${clockIn(iso, 'UTC')} UTC`);
      expect(title).toBe(utc);
    }
  };
  await check('local');
  // Hovering shows the title: the date and time in UTC.
  await asOf.hover();
  expect(await asOf.getAttribute('title')).toMatch(/ · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);

  // Relative where it reads better, the instant on hover.
  const next = page.locator('tr[data-task="health_check"] td[data-label="Next run"] time');
  await expect(next).toHaveText(/^(in \d+ s|due now)$/);
  await expect(next).toHaveAttribute('title', /UTC$/);
  const last = page.locator('tr[data-task="health_check"] .last-run time');
  await expect(last).toHaveText(/^(just now|\d+ s ago)$/, { timeout: 45_000 });

  // UTC, from the keyboard.
  await times.focus();
  await page.keyboard.press('ArrowDown');
  await expect(times).toHaveValue('utc');
  await check('utc');
  await expect(page.locator('.chart.pool .point').last()).toHaveAttribute('aria-label', /^\d\d:\d\d:\d\d UTC: /);
  // Remembered: after a reload the page comes back to UTC (the server renders UTC anyway).
  await page.reload();
  await expect(times).toBeEnabled();
  await page.waitForTimeout(1_500);
  await expect(times).toHaveValue('utc');
  await check('utc');
  // And back to local, remembered the same way.
  await times.selectOption('local');
  await page.reload();
  await expect(times).toBeEnabled();
  await expect(times).toHaveValue('local');
  await check('local');
  await expect(page.locator('.chart.pool .point').last()).toHaveAttribute('aria-label', /^\d\d:\d\d:\d\d: /);
});

test('relative times in the audit log follow the clock without rewriting the log', async ({ page }) => {
  await ready(page);
  await page.locator('[data-control="cleanup"]').click();
  await page.locator('[data-preview="cleanup"]').getByRole('button', { name: 'Cancel' }).click();
  const when = page.locator('table.audit tbody tr').first().locator('td.when time');
  await expect(when).toHaveAttribute('data-rel', 'ago');
  await expect(when).toHaveText(/^(just now|\d s ago)$/);
  await expect(when).toHaveAttribute('title', /UTC\+05:30 · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  // Marked, then a few seconds on: the same element, its words changed in place.
  await when.evaluate((t) => t.setAttribute('data-marked', ''));
  await expect(when).toHaveText(/^[3-9] s ago$/, { timeout: 10_000 });
  await expect(page.locator('table.audit time[data-marked]')).toHaveCount(1);
});

test('the theme follows the system, a choice is remembered in a cookie the server renders from', async ({ page, context }) => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await ready(page);
  const html = page.locator('html');
  const themeToggle = page.locator('[data-pref="theme"]');
  // Auto: the system's dark.
  await expect(themeToggle).toHaveValue('auto');
  await expect(html).not.toHaveAttribute('data-theme');
  expect(await pageColour(page)).toBe(DARK_PAGE);
  await page.emulateMedia({ colorScheme: 'light' });
  expect(await pageColour(page)).toBe(LIGHT_PAGE);

  // Dark against the system's light: at once, and in a cookie the page can write.
  await themeToggle.selectOption('dark');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  expect(await pageColour(page)).toBe(DARK_PAGE);
  const cookie = (await context.cookies()).find((c) => c.name === 'leasewatch_theme');
  expect(cookie).toMatchObject({ value: 'dark', path: '/', sameSite: 'Lax', httpOnly: false });
  expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000 + 300 * 86_400);

  // No flash: the server's HTML already carries the theme, for the dashboard, the login page
  // and the not-found page alike.
  for (const path of ['/', '/login', '/no-such-page']) {
    const served = await (await page.request.get(path)).text();
    expect(served, path).toMatch(/^<!DOCTYPE html><html lang="en" data-theme="dark">/);
  }
  await page.reload();
  await expect(html).toHaveAttribute('data-theme', 'dark');
  await expect(themeToggle).toHaveValue('dark');
  expect(await pageColour(page)).toBe(DARK_PAGE);

  // Light against the system's dark.
  await page.emulateMedia({ colorScheme: 'dark' });
  await themeToggle.selectOption('light');
  await expect(html).toHaveAttribute('data-theme', 'light');
  expect(await pageColour(page)).toBe(LIGHT_PAGE);
  await page.reload();
  expect(await pageColour(page)).toBe(LIGHT_PAGE);

  // Back to auto: the cookie goes, the system decides again.
  await themeToggle.selectOption('auto');
  await expect(html).not.toHaveAttribute('data-theme');
  expect(await pageColour(page)).toBe(DARK_PAGE);
  expect((await context.cookies()).find((c) => c.name === 'leasewatch_theme')).toBeUndefined();
  const served = await (await page.request.get('/')).text();
  expect(served).toMatch(/^<!DOCTYPE html><html lang="en">/);
});

test('the dark theme is complete: severities, charts and tooltips keep their contrast', async ({ page, baseURL }) => {
  await page.context().addCookies([{ name: 'leasewatch_theme', value: 'dark', url: baseURL! }]);
  await ready(page);
  await expect(page.locator('table.leases tr.stale')).toHaveCount(1, { timeout: 30_000 });
  await expect.poll(() => page.locator('.chart.pool .point').count(), { timeout: 30_000 }).toBeGreaterThan(1);
  const pairs = await page.evaluate(() => {
    const background = (el: Element): string => {
      for (let node: Element | null = el; node; node = node.parentElement) {
        const colour = getComputedStyle(node).backgroundColor;
        if (colour !== 'rgba(0, 0, 0, 0)') return colour;
      }
      return getComputedStyle(document.documentElement).backgroundColor;
    };
    const out: { what: string; colour: string; background: string; min: number }[] = [];
    const text = (selector: string) =>
      document.querySelectorAll(selector).forEach((el) =>
        out.push({ what: selector, colour: getComputedStyle(el).color, background: background(el), min: 4.5 }));
    text('.badge');
    text('[data-metric][data-severity] .value');
    text('tr.stale td');
    text('.summary strong');
    text('.note');
    text('.feedback');
    text('.masthead label');
    for (const figure of document.querySelectorAll('.charts figure.chart')) {
      const panel = getComputedStyle(figure).backgroundColor;
      figure.querySelectorAll('.series, use.run, .limit, .axis, .mark').forEach((el) => {
        const style = getComputedStyle(el);
        // A line is drawn by its stroke; a mark by its fill, or its stroke when it has no fill.
        const line = el.tagName === 'line' || el.tagName === 'polyline';
        const filled = !line && style.fill !== 'none' && style.fill !== panel;
        out.push({ what: el.getAttribute('class') ?? '', colour: filled ? style.fill : style.stroke, background: panel, min: 3 });
      });
      figure.querySelectorAll('text').forEach((el) => {
        const tip = el.closest('.tooltip')?.querySelector('rect');
        out.push({ what: `text ${el.textContent}`, colour: getComputedStyle(el).fill, background: tip ? getComputedStyle(tip).fill : panel, min: 4.5 });
      });
    }
    return out;
  });
  expect(pairs.length).toBeGreaterThan(20);
  for (const { what, colour, background, min } of pairs) {
    expect(contrast(colour, background), `${what}: ${colour} on ${background}`).toBeGreaterThanOrEqual(min);
  }
  expect(await pageColour(page)).toBe(DARK_PAGE);
});

test('screenshot of the dashboard in the dark theme for the docs', async ({ page, baseURL }) => {
  test.skip(!process.env.SCREENSHOTS, 'set SCREENSHOTS=1 to write docs/dashboard-dark.png');
  test.setTimeout(150_000);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.context().addCookies([{ name: 'leasewatch_theme', value: 'dark', url: baseURL! }]);
  await ready(page);
  // A minute of samples (one each 5 s), so every chart has data, and the leak showing.
  await expect.poll(() => page.locator('.chart.pool .point').count(), { timeout: 90_000 }).toBeGreaterThanOrEqual(12);
  await expect(page.locator('table.leases tr.stale')).toHaveCount(1, { timeout: 30_000 });
  // An entry in the audit log: a cleanup previewed, not taken.
  await page.locator('[data-control="cleanup"]').click();
  await page.locator('[data-preview="cleanup"]').getByRole('button', { name: 'Cancel' }).click();
  await expect(page.locator('table.audit tbody tr')).toHaveCount(1);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: join(__dirname, '..', '..', 'docs', 'dashboard-dark.png'), fullPage: true });
});
