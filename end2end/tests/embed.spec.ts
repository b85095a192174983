import { expect, test } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logIn } from './login';
import { OPERATOR_TOKEN } from '../playwright.config';

// The embedding example (examples/embed, built by `cargo xtask e2e` beside the release
// server): an axum app of its own with a Rust job, `heartbeat`, and Leasewatch mounted at
// /admin/leasewatch.
const PORT = 3228;
const ORIGIN = `http://127.0.0.1:${PORT}`;
const PREFIX = '/admin/leasewatch';
const JOB = 'heartbeat';

let app: ChildProcess | undefined;
let dir: string;

test.beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `leasewatch-e2e-${PORT}-`));
  app = spawn('target/release/leasewatch-example-embed', [], {
    cwd: '..',
    env: {
      ...process.env,
      BIND_ADDR: `127.0.0.1:${PORT}`,
      DATABASE_URL: `sqlite://${join(dir, 'app.db')}`,
      LEASEWATCH_OPERATOR_TOKEN: OPERATOR_TOKEN,
      DASHBOARD_POLL_INTERVAL: '1s',
      RUST_LOG: 'warn',
    },
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${ORIGIN}${PREFIX}/healthz`)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the embedding example on port ${PORT} did not start within 10 s`);
});

test.afterAll(async () => {
  const child = app;
  app = undefined;
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test("the host's own routes answer as before, outside Leasewatch's middleware", async ({ playwright }) => {
  const api = await playwright.request.newContext({ baseURL: ORIGIN, maxRedirects: 0 });
  const home = await api.get('/');
  expect(home.status()).toBe(200);
  expect(await home.text()).toBe('my app');
  // No session needed, and none of the dashboard's headers (its CSP) on the host's pages.
  expect(home.headers()['content-security-policy']).toBeUndefined();
  const mounted = await api.get(`${PREFIX}/login`);
  expect(mounted.headers()['content-security-policy']).toContain("default-src 'self'");
  // The mount point itself goes to the dashboard's one address.
  const bare = await api.get(`${PREFIX}?range=1h`);
  expect(bare.status()).toBe(308);
  expect(bare.headers()['location']).toBe(`${PREFIX}/?range=1h`);
});

test('the API and the metrics under the prefix need the token and show the job', async ({ playwright }) => {
  const api = await playwright.request.newContext({ baseURL: ORIGIN, maxRedirects: 0 });
  const status = `${PREFIX}/api/admin/background-jobs/status`;
  expect((await api.get(status)).status()).toBe(401);
  expect((await api.get(status, { headers: { Authorization: 'Bearer wrong-token' } })).status()).toBe(401);
  const auth = { Authorization: `Bearer ${OPERATOR_TOKEN}` };
  const answer = await api.get(status, { headers: auth });
  expect(answer.status()).toBe(200);
  const names = (await answer.json()).tasks.map((t: { name: string }) => t.name);
  expect(names).toContain(JOB);
  expect(names).toContain('health_check');
  expect((await api.get(`${PREFIX}/metrics`)).status()).toBe(401);
  const metrics = await api.get(`${PREFIX}/metrics`, { headers: auth });
  expect(await metrics.text()).toContain(`task="${JOB}"`);
  // A page without a session goes to the login page under the prefix, and names itself.
  const page = await api.get(`${PREFIX}/runs?task=${JOB}`);
  expect(page.status()).toBe(303);
  expect(page.headers()['location']).toBe(
    `${PREFIX}/login?next=${encodeURIComponent(`${PREFIX}/runs?task=${JOB}`)}`,
  );
  // `next` stays under the prefix.
  const login = (next: string) =>
    api.post(`${PREFIX}/login`, { headers: { Origin: ORIGIN }, form: { token: OPERATOR_TOKEN, next } });
  expect((await login(`${PREFIX}/audit`)).headers()['location']).toBe(`${PREFIX}/audit`);
  for (const away of ['/', '//evil.example', `${PREFIX}/../x`, `${PREFIX}x`, `${PREFIX}/login`]) {
    expect((await login(away)).headers()['location'], away).toBe(`${PREFIX}/`);
  }
});

test('the custom job runs through a lease from its mounted dashboard', async ({ page, context }) => {
  const calls: string[] = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/') && r.request().method() === 'POST') calls.push(`${r.status()} ${r.url()}`);
  });
  await logIn(page, OPERATOR_TOKEN, `${ORIGIN}${PREFIX}`);
  await expect(page).toHaveURL(`${ORIGIN}${PREFIX}/`);
  const cookies = await context.cookies(ORIGIN + PREFIX);
  expect(cookies.map((c) => c.path)).toEqual([PREFIX]);

  const row = page.locator(`tr[data-task="${JOB}"]`);
  await expect(row).toBeVisible();
  await row.getByRole('button', { name: `Run ${JOB} now` }).click();
  await expect(row.locator('.last-run')).toHaveAttribute('data-outcome', 'succeeded');
  // Its own scheduled run (every minute) may have come first.
  await expect(row.locator('.last-run .detail')).toHaveText(/^heartbeat \d+ written$/);
  // The dashboard's server functions went to the prefix, and were answered there.
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) expect(call).toMatch(new RegExp(`^200 ${ORIGIN}${PREFIX}/api/`));

  // Its runs in the history (written within seconds of finishing), then the run's own page
  // with the lease its attempt held.
  await row.getByRole('link', { name: JOB }).click();
  await expect(page).toHaveURL(`${ORIGIN}${PREFIX}/runs?task=${JOB}`);
  // The run started from the dashboard (a scheduled one may be listed beside it).
  const run = page.locator(`tr[data-task="${JOB}"][data-outcome="succeeded"]`).filter({ hasText: 'run now' });
  await expect(async () => {
    await page.reload();
    await expect(run).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await run.getByRole('link', { name: /Details/ }).click();
  await expect(page).toHaveURL(new RegExp(`^${ORIGIN}${PREFIX}/runs/[^/]+/\\d+$`));
  await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('li.attempt[data-attempt="1"] tr[data-lease]')).toHaveCount(1);

  // The navigation stays under the prefix, and logging out lands on its login page.
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page).toHaveURL(`${ORIGIN}${PREFIX}/`);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(`${ORIGIN}${PREFIX}/login`);
  expect(await context.cookies(ORIGIN + PREFIX)).toEqual([]);
});
