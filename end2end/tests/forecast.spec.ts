import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN } from '../playwright.config';

// Predictive cleanup as an operator sees it, against the real PostgreSQL server: a client opens
// one more connection every 2 s, and the dashboard forecasts when the server's usable slots run
// out before any connection is refused. Pure observation: PREDICTIVE_CLEANUP=off, and the ramp's
// sessions are the only ones this test ends. The horizon is an hour, so a modest ramp on the
// shared server (max_connections 100) forecasts exhaustion within it.

const PG = process.env.LEASEWATCH_TEST_PG_HOST ?? '127.0.0.1';
const DATABASE = 'leasewatch_e2e_forecast';
const RAMP_APP = 'e2e-ramp';
const RAMP_TO = 20;

const server = new ExtraServer(3219, {
  DATABASE_URL: `postgres://postgres@${PG}:5432/${DATABASE}`,
  PREDICT_HORIZON: '1h',
  PREDICTIVE_CLEANUP: 'off',
});

/** One SQL statement through psql as the test's own superuser, its single value. */
function sql(statement: string, dbname = 'postgres'): string {
  return execFileSync('psql', [`host=${PG} user=postgres dbname=${dbname}`, '-XAtc', statement], {
    encoding: 'utf8',
  }).trim();
}

/** The ramp's sessions on the server now. */
function rampSessions(): number {
  return Number(sql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = '${RAMP_APP}'`));
}

/** Ends the ramp's sessions (and only them): killing psql leaves its backend asleep. */
function endRampSessions() {
  sql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${RAMP_APP}' AND datname = '${DATABASE}'`);
}

/**
 * A bounded ramp: one more connection every 2 s, up to RAMP_TO, each held by a psql asleep for
 * two minutes. `stop` kills every psql and ends their sessions.
 */
function ramp() {
  const children: ChildProcess[] = [];
  let stopped = false;
  const done = (async () => {
    for (let i = 0; i < RAMP_TO && !stopped; i++) {
      children.push(
        spawn('psql', [`host=${PG} user=postgres dbname=${DATABASE} application_name=${RAMP_APP}`, '-Xc', 'SELECT pg_sleep(120)'], {
          stdio: 'ignore',
        }),
      );
      await new Promise((r) => setTimeout(r, 2_000));
    }
  })();
  return {
    /** Settles once every connection of the ramp was opened. */
    finished: done,
    async stop() {
      stopped = true;
      await done;
      for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
      endRampSessions();
    },
  };
}

/** Every text of the server chart as rendered: its size and whether it stays inside its SVG. */
function serverChartTexts(page: Page) {
  return page.locator('.chart.server svg.plot').evaluate((svg) => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll<SVGTextElement>('text')]
      .filter((t) => t.getBoundingClientRect().width > 0)
      .map((t) => {
        const b = t.getBoundingClientRect();
        return {
          text: t.textContent ?? '',
          px: parseFloat(getComputedStyle(t).fontSize) * (t.getScreenCTM()?.a ?? 0),
          inside: b.left >= box.left - 0.5 && b.right <= box.right + 0.5 && b.top >= box.top - 0.5 && b.bottom <= box.bottom + 0.5,
        };
      });
  });
}

test.describe.configure({ mode: 'serial', timeout: 180_000 });

test.beforeAll(async () => {
  sql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  sql(`CREATE DATABASE ${DATABASE}`);
  await server.start();
});

test.afterAll(async () => {
  await server.remove();
  endRampSessions();
  sql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
});

test('a rising connection count draws the forecast to the usable limit and a critical recommendation', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const chart = page.locator('figure.chart.server');
  // The server is read every 2 s and sampled into the history every 5 s.
  await expect(chart.locator('.point').first()).toBeAttached({ timeout: 20_000 });
  await expect(chart.locator('.forecast-summary')).toContainText(/^\d+ of \d+ usable slots in use/);
  // The usable limit: max_connections less the reserved slots.
  const usable = Number(
    sql(
      "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int" +
        " - coalesce(current_setting('reserved_connections', true)::int, 0)",
    ),
  );
  await expect(chart.locator('svg.plot > line.limit')).toBeAttached();
  await expect(chart.locator('text.limit-label')).toHaveText(`usable ${usable}`);
  await expect(chart.locator('.legend')).toContainText('usable slots (max_connections − reserved)');
  await expect(chart.locator('text.tick', { hasText: /^now$/ })).toBeAttached();
  await expect(chart.locator('svg.plot > line.now')).toBeAttached();

  const rising = ramp();
  try {
    // The forecast line, from the last read to the usable limit, labelled with its eta.
    const line = chart.locator('svg.plot > line.forecast');
    await expect(line).toBeAttached({ timeout: 60_000 });
    await expect(chart.locator('text.forecast-label')).toHaveText(/^exhaustion in ~\d+ (s|min)$/);
    await expect(chart.locator('.legend')).toContainText('forecast');
    // It ends on the limit line.
    const [end, limit] = await Promise.all([line.getAttribute('y2'), chart.locator('svg.plot > line.limit').getAttribute('y1')]);
    expect(end).toBe(limit);
    // With the alarm raised (two reads in a row predict exhaustion within the hour): critical.
    await expect(chart).toHaveAttribute('data-alarm', 'raised', { timeout: 30_000 });
    await expect(chart.locator('svg.plot > line.forecast.critical')).toBeAttached();
    await expect(chart.locator('.forecast-summary')).toContainText(
      /rising \(\+\d+\.\d per minute, fit \d\.\d\d\): exhaustion in ~\d+ (s|min)\. Alarm raised at \d\d:\d\d:\d\d: warning only \(predictive cleanup is off\)\./,
    );

    // The forecast's end is a point like the others: its time and numbers on hover.
    const forecastPoint = chart.locator('.point[aria-label*="forecast: all"]');
    await forecastPoint.hover();
    const tip = forecastPoint.locator('.tooltip text');
    await expect(tip.first()).toBeVisible();
    await expect(tip.nth(1)).toHaveText(`forecast: all ${usable} usable slots in use`);
    await expect(tip.nth(2)).toHaveText(/^exhaustion in ~\d+ (s|min)$/);

    // The recommendation names the forecast and who is growing.
    const advice = page.locator('.advice [data-recommendation="exhaustion_predicted"]');
    await expect(advice).toBeVisible({ timeout: 30_000 });
    await expect(advice).toHaveClass(/critical/);
    await expect(advice).toContainText(/Exhaustion predicted in ~\d+ (s|min)/);
    await expect(advice).toContainText(RAMP_APP);
    await expect(advice).toContainText('PREDICTIVE_CLEANUP=off');

    // Every label of the chart is readable and inside it, on a wide screen and on a phone.
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
      await page.setViewportSize(viewport);
      await page.mouse.move(0, 0);
      const texts = await serverChartTexts(page);
      expect(texts.map((t) => t.text)).toContainEqual(expect.stringMatching(/^exhaustion in ~/));
      for (const t of texts) {
        expect(t.px, `"${t.text}" at ${viewport.width} px: size`).toBeGreaterThanOrEqual(11);
        expect(t.inside, `"${t.text}" at ${viewport.width} px: inside the chart`).toBe(true);
      }
    }

    if (process.env.SCREENSHOTS) {
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.mouse.move(0, 0);
      await chart.screenshot({ path: join(__dirname, '..', '..', 'docs', 'chart-server-forecast.png') });
    }

    // Observation only: once the ramp is done, every one of its connections is still there.
    await rising.finished;
    await expect.poll(rampSessions, { timeout: 10_000 }).toBe(RAMP_TO);
  } finally {
    await rising.stop();
  }
  expect(rampSessions()).toBe(0);
});

test('the tasks say when they run and the next hour\'s expected peak of their connections', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  // Demo cadences (10, 20 and 30 s), each at its own phase on the clock.
  const row = page.locator('tr[data-task="status_transitions"] td[data-label="Schedule"]');
  await expect(row).toHaveText(/^every 10 s( \(offset \d+ m?s\))?$/);
  await expect(page.locator('tr[data-task="health_check"] td[data-label="Schedule"]')).toHaveText(/^every 30 s /);
  const preview = page.locator('[data-schedule-preview]');
  // The peak's time in the browser's zone (so no "UTC"), the instant on hover.
  await expect(preview).toHaveText(/^next hour: peak \d+ at \d\d:\d\d(:\d\d)?( \(|, )/);
  await expect(preview.locator('time')).toHaveAttribute('title', /UTC\+05:30 · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  // The server renders it too: it is there without JavaScript.
  const html = await (await page.request.get(`${server.base}/`)).text();
  expect(html).toMatch(/data-schedule-preview[^>]*>next hour: peak \d+ at <time datetime="[^"]+Z" title="[^"]+ UTC">\d\d:\d\d(:\d\d)? UTC<\/time>/);
});
