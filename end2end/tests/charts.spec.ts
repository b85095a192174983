import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';

// The charts as an operator reads them: label sizes, nothing clipped, contrast, and a point's
// exact time (in the browser's zone, Asia/Kolkata here) and value on hover and on keyboard
// focus. With SCREENSHOTS=1, the last test writes
// docs/charts-1280.png and docs/charts-390.png once the demo has run for a minute.

const wide = { width: 1280, height: 800 };
const phone = { width: 390, height: 844 };
test.use({ viewport: wide });

/** Logs in and waits for data in every chart: pool samples (one each 5 s) and runs. */
async function chartsWithData(page: Page, samples = 3) {
  await logIn(page);
  await expect
    .poll(() => page.locator('.chart.pool .point').count(), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(samples);
  await expect(page.locator('.chart.runs use.run').first()).toBeAttached();
}

type Measured = {
  text: string;
  where: string;
  px: number;
  inside: boolean;
  fill: string;
  background: string;
};

/** Every chart text on screen (tooltips included when shown), as rendered. */
function measureLabels(page: Page): Promise<Measured[]> {
  return page.evaluate(() => {
    const out: Measured[] = [];
    for (const figure of document.querySelectorAll<HTMLElement>('.charts figure.chart')) {
      const background = getComputedStyle(figure).backgroundColor;
      for (const svg of figure.querySelectorAll<SVGSVGElement>('svg.plot')) {
        const box = svg.getBoundingClientRect();
        for (const text of svg.querySelectorAll<SVGTextElement>('text')) {
          const b = text.getBoundingClientRect();
          if (b.width === 0) continue; // in a hidden tooltip
          const tooltip = text.closest('.tooltip')?.querySelector('rect');
          out.push({
            text: text.textContent ?? '',
            where: figure.className,
            // SVG text is scaled by its SVG's transform: the computed size alone is not what shows.
            px: parseFloat(getComputedStyle(text).fontSize) * (text.getScreenCTM()?.a ?? 0),
            inside: b.left >= box.left - 0.5 && b.right <= box.right + 0.5 && b.top >= box.top - 0.5 && b.bottom <= box.bottom + 0.5,
            fill: getComputedStyle(text).fill,
            background: tooltip ? getComputedStyle(tooltip).fill : background,
          });
        }
      }
      for (const el of figure.querySelectorAll<HTMLElement>('figcaption, .legend .key, .note')) {
        out.push({
          text: el.textContent ?? '',
          where: figure.className,
          px: parseFloat(getComputedStyle(el).fontSize),
          inside: true,
          fill: getComputedStyle(el).color,
          background,
        });
      }
    }
    return out;
  });
}

/** WCAG 2 contrast ratio of two computed colours ("rgb(r, g, b)"). */
function contrast(a: string, b: string): number {
  const luminance = (color: string) => {
    const [r, g, bl] = (color.match(/[\d.]+/g) ?? []).slice(0, 3).map((c) => {
      const s = Number(c) / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** A chart's point under the mouse or with the focus, and its tooltip, read in one go (polls replace the markup). */
function shownPoint(page: Page, state: ':hover' | ':focus', chart = 'pool') {
  return page.evaluate(
    ([state, chart]) => {
      const point = document.querySelector(`.chart.${chart} .point${state}`);
      const tip = point?.querySelector('.tip');
      if (!point || !tip) return null;
      const svg = point.closest('svg')!.getBoundingClientRect();
      const box = tip.querySelector('.tooltip rect')!.getBoundingClientRect();
      return {
        label: point.getAttribute('aria-label'),
        lines: [...tip.querySelectorAll('text')].map((t) => t.textContent),
        shown: getComputedStyle(tip).display !== 'none' && box.width > 0,
        inside: box.left >= svg.left && box.right <= svg.right && box.top >= svg.top && box.bottom <= svg.bottom,
        focused: document.activeElement === point,
      };
    },
    [state, chart],
  );
}

/** Seconds from "HH:MM:SS" `earlier` to `later` (" UTC" after them or not), across midnight too. */
function secondsBetween(earlier: string, later: string): number {
  const secs = (time: string) => {
    const [h, m, s] = time.replace(' UTC', '').split(':').map(Number);
    return h * 3600 + m * 60 + s;
  };
  const diff = (secs(later) - secs(earlier) + 86_400) % 86_400;
  return diff > 43_200 ? diff - 86_400 : diff;
}

test('chart labels are at least 11 px, inside their chart, and readable', async ({ page }) => {
  await chartsWithData(page);
  for (const viewport of [wide, phone]) {
    await page.setViewportSize(viewport);
    const labels = await measureLabels(page);
    const texts = labels.map((l) => l.text);
    for (const expected of ['now', '−15 min', 'conns', 'ms', '0', 'health_check']) {
      expect(texts, expected).toContain(expected);
    }
    expect(texts).toContainEqual(expect.stringMatching(/^max \d+$/));
    for (const label of labels) {
      const what = `"${label.text}" in ${label.where} at ${viewport.width} px`;
      expect(label.px, `${what}: size`).toBeGreaterThanOrEqual(11);
      expect(label.inside, `${what}: inside its svg`).toBe(true);
      expect(contrast(label.fill, label.background), `${what}: contrast`).toBeGreaterThanOrEqual(4.5);
    }
    const sizes = labels.map((l) => l.px);
    const ratios = labels.map((l) => contrast(l.fill, l.background));
    console.log(
      `chart text at ${viewport.width} px: ${labels.length} labels, ${Math.min(...sizes).toFixed(1)}–${Math.max(...sizes).toFixed(1)} px, ` +
        `contrast ${Math.min(...ratios).toFixed(2)}:1 at least`,
    );
  }
});

test('series and marks stand out from the background (3:1)', async ({ page }) => {
  await chartsWithData(page);
  const colours = await page.evaluate(() => {
    const out: { what: string; colour: string; background: string }[] = [];
    for (const figure of document.querySelectorAll<HTMLElement>('.charts figure.chart')) {
      const background = getComputedStyle(figure).backgroundColor;
      for (const el of figure.querySelectorAll<SVGElement>('.series, .dot, use.run, .limit, .axis')) {
        const style = getComputedStyle(el);
        // A line is drawn by its stroke (its fill, black by default, paints nothing); a mark by
        // its fill, or by its stroke when it has no fill of its own.
        const line = el.tagName === 'line' || el.tagName === 'polyline';
        const filled = !line && style.fill !== 'none' && style.fill !== background;
        out.push({ what: el.getAttribute('class') ?? '', colour: filled ? style.fill : style.stroke, background });
      }
    }
    return out;
  });
  const kinds = new Set(colours.map((c) => c.what));
  for (const kind of ['series active', 'series idle', 'series waiting', 'series latency', 'run succeeded', 'run overlap']) {
    expect(kinds, kind).toContain(kind);
  }
  for (const { what, colour, background } of colours) {
    expect(contrast(colour, background), `${what} (${colour})`).toBeGreaterThanOrEqual(3);
  }
});

test('hovering a point shows its time and value', async ({ page }) => {
  await chartsWithData(page);
  const takenAt = Number(await page.locator('.as-of').getAttribute('data-taken-at'));
  await page.locator('.chart.pool .point').last().hover();
  const newest = await shownPoint(page, ':hover');
  expect(newest).not.toBeNull();
  // Local time, so no "UTC" (the header names the zone).
  const match = newest!.label!.match(/^(\d\d:\d\d:\d\d): (\d+) in use, (\d+) idle, (\d+) waiting$/);
  expect(match, newest!.label!).not.toBeNull();
  const [, time, active, idle, waiting] = match!;
  expect(newest!.shown).toBe(true);
  expect(newest!.inside).toBe(true);
  expect(newest!.lines).toEqual([time, `${active} in use`, `${idle} idle`, `${waiting} waiting`]);
  // The newest sample is about as old as the data: samples come every 5 s, polls every second.
  const dataTime = await page.evaluate((at) => new Date(at).toTimeString().slice(0, 8), takenAt);
  expect(Math.abs(secondsBetween(time, dataTime))).toBeLessThanOrEqual(10);

  // Polls replace the markup every second: the mouse, not moved, still shows a tooltip after
  // two (once the browser has worked out again what is under it, which a loaded machine delays).
  await page.waitForTimeout(2_500);
  await expect.poll(async () => (await shownPoint(page, ':hover'))?.shown, { timeout: 5_000 }).toBe(true);

  // Tooltips read white on the dark box. Both colours are read from one element in one go: a
  // poll may replace the markup between two reads.
  const tip = page.locator('.chart.pool .point:hover .tooltip');
  await expect
    .poll(async () =>
      tip.evaluate((t) => [
        getComputedStyle(t.querySelector('text')!).fill,
        getComputedStyle(t.querySelector('rect')!).fill,
      ]).then(([text, box]) => contrast(text, box)).catch(() => 0),
    )
    .toBeGreaterThanOrEqual(4.5);
});

test('the runs chart draws overlap skips with their own shape, time and legend', async ({ page }) => {
  await chartsWithData(page);
  // The demo's leaky_report runs every 20 s and holds its connection for 60 s: ticks overlap.
  const skip = page.locator('.chart.runs .point[aria-label*="leaky_report, overlap skip"]');
  await expect(skip.first()).toBeAttached({ timeout: 45_000 });
  await expect(page.locator('.chart.runs use.run.overlap[href="#lw-overlap"]').first()).toBeAttached();
  await expect(page.locator('.chart.runs .legend')).toContainText('overlap skip (previous run still going)');
  await expect(page.locator('.chart.runs .legend')).toContainText('skipped (another instance ran it)');

  await skip.last().hover();
  const shown = await shownPoint(page, ':hover', 'runs');
  expect(shown?.shown).toBe(true);
  expect(shown?.inside).toBe(true);
  expect(shown?.label).toMatch(/^\d\d:\d\d:\d\d: leaky_report, overlap skip$/);
  expect(shown?.lines).toEqual([shown!.label!.split(': ')[0], 'leaky_report', 'overlap skip']);
});

test('a point focused with the keyboard shows its time and value, and keeps the focus', async ({ page }) => {
  await chartsWithData(page);
  // Tab from the chart's caption: its skip link, then its first point.
  await page.locator('.chart.pool figcaption').click();
  await page.keyboard.press('Tab');
  await expect(page.locator('#skip-pool')).toBeFocused();
  await expect(page.locator('#skip-pool')).toBeVisible();
  await page.keyboard.press('Tab');
  const first = await shownPoint(page, ':focus');
  expect(first?.focused).toBe(true);
  expect(first?.shown).toBe(true);
  expect(first?.inside).toBe(true);
  const [time, values] = first!.label!.split(': ');
  expect(time).toMatch(/^\d\d:\d\d:\d\d$/);
  expect(first!.lines).toEqual([time, ...values.split(', ')]);

  // Polls do not take the focus away (the charts hold still while it is there)...
  await page.waitForTimeout(2_500);
  const later = await shownPoint(page, ':focus');
  expect(later?.label).toBe(first!.label);
  expect(later?.shown).toBe(true);

  // ...and the next Tab goes to the next sample.
  await page.keyboard.press('Tab');
  const next = await shownPoint(page, ':focus');
  expect(next?.shown).toBe(true);
  const step = secondsBetween(time, next!.label!.split(': ')[0]);
  expect(step).toBeGreaterThanOrEqual(4);
  expect(step).toBeLessThanOrEqual(6);

  // Once the focus leaves, the charts follow the data again.
  const before = await page.locator('section.charts').innerHTML();
  await page.locator('h1').click();
  await expect.poll(() => page.locator('section.charts').innerHTML(), { timeout: 5_000 }).not.toBe(before);
});

test('skip links jump over each chart\'s points', async ({ page }) => {
  await chartsWithData(page);
  await page.locator('.chart.pool figcaption').click();
  await page.keyboard.press('Tab');
  await expect(page.locator('#skip-pool')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#skip-latency')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#skip-runs')).toBeFocused();
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  const after = await page.evaluate(() => {
    const active = document.activeElement!;
    const charts = document.querySelector('section.charts')!;
    return {
      inCharts: charts.contains(active),
      following: Boolean(charts.compareDocumentPosition(active) & Node.DOCUMENT_POSITION_FOLLOWING),
    };
  });
  expect(after).toEqual({ inCharts: false, following: true });
});

test('screenshots of the charts for the docs', async ({ page }) => {
  test.skip(!process.env.SCREENSHOTS, 'set SCREENSHOTS=1 to write docs/charts-*.png');
  test.setTimeout(150_000);
  // A minute of samples (one each 5 s), so every chart has data.
  await chartsWithData(page, 12);
  await expect(page.locator('.chart.runs .point[aria-label*="overlap skip"]').first()).toBeAttached();
  const docs = join(__dirname, '..', '..', 'docs');
  for (const [viewport, file] of [[wide, 'charts-1280.png'], [phone, 'charts-390.png']] as const) {
    await page.setViewportSize(viewport);
    await page.mouse.move(0, 0);
    await page.locator('section.charts').screenshot({ path: join(docs, file) });
  }
});
