import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { ExtraServer } from './servers';
import { VIEWER_TOKEN } from '../playwright.config';

// The shipped alerting rules, as a team that lets Prometheus alert would run them: Debian's
// Prometheus scrapes the release server with the viewer token (from a credentials file) and
// evaluates deploy/prometheus/leasewatch.rules.yml itself, not a copy. The demo's leaking task
// holds its connection for 60 s, past the 3 s LEASE_TIMEOUT, and cleanup waits an hour (E2E_ENV),
// so StaleLeases goes pending, then firing once its `for` has passed.

const PORT = 3221;
const PROMETHEUS = 'http://127.0.0.1:9391';
const RULES = join(__dirname, '..', '..', 'deploy', 'prometheus', 'leasewatch.rules.yml');
const INSTANCE = `127.0.0.1:${PORT}`;

// Made in beforeAll, not when the file loads: Playwright also loads it to list the tests, and
// would leave their folders behind.
let server: ExtraServer | undefined;
let dir: string | undefined;
let prometheus: ChildProcess | undefined;
let prometheusLog = '';

/** One answer of Prometheus's HTTP API, its `data`. */
async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${PROMETHEUS}/api/v1/${path}`);
  expect(response.ok, `${path}: ${response.status}`).toBe(true);
  const body = (await response.json()) as { status: string; data: T };
  expect(body.status).toBe('success');
  return body.data;
}

interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

test.describe.configure({ mode: 'serial', timeout: 90_000 });

test.beforeAll(async () => {
  // The leak runs every 5 s instead of 20 s, so the first one comes soon after start.
  server = new ExtraServer(PORT, { LEASEWATCH_VIEWER_TOKEN: VIEWER_TOKEN, DEMO_LEAK_EVERY: '5s' });
  await server.start();
  const folder = mkdtempSync(join(tmpdir(), 'leasewatch-e2e-prometheus-'));
  dir = folder;
  const tokenFile = join(folder, 'viewer-token');
  writeFileSync(tokenFile, `${VIEWER_TOKEN}\n`, { mode: 0o600 });
  // JSON is YAML: the configuration the README describes, with 1 s intervals for the test.
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [RULES],
    scrape_configs: [
      {
        job_name: 'leasewatch',
        authorization: { type: 'Bearer', credentials_file: tokenFile },
        static_configs: [{ targets: [INSTANCE] }],
      },
    ],
  };
  writeFileSync(join(folder, 'prometheus.yml'), JSON.stringify(config));
  // Loopback only, its data in the temporary folder, warnings and errors kept for a failure.
  prometheus = spawn(
    '/usr/bin/prometheus',
    [
      `--config.file=${join(folder, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(folder, 'data')}`,
      '--web.listen-address=127.0.0.1:9391',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus.stderr!.on('data', (chunk) => (prometheusLog += chunk));
  for (let i = 0; i < 100 && prometheus.exitCode === null; i++) {
    try {
      if ((await fetch(`${PROMETHEUS}/-/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Prometheus did not become ready within 10 s:\n${prometheusLog}`);
});

test.afterAll(async () => {
  const child = prometheus;
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  await server?.remove();
});

test('Prometheus scrapes /metrics with the viewer token from its credentials file', async () => {
  await expect
    .poll(async () => {
      const { activeTargets } = await api<{ activeTargets: { health: string; lastError: string; labels: Record<string, string> }[] }>(
        'targets?state=active',
      );
      return activeTargets.map((t) => ({ job: t.labels.job, instance: t.labels.instance, health: t.health, lastError: t.lastError }));
    }, { timeout: 15_000 })
    .toEqual([{ job: 'leasewatch', instance: INSTANCE, health: 'up', lastError: '' }]);
  // The scrape's samples are there to evaluate: the scheduler runs.
  const { result } = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    `query?query=${encodeURIComponent('leasewatch_scheduler_running{job="leasewatch"}')}`,
  );
  expect(result.map((r) => [r.metric.instance, r.value[1]])).toEqual([[INSTANCE, '1']]);
});

test('the shipped StaleLeases rule fires for the leaking task, after its pending time', async () => {
  // Prometheus evaluates the shipped file itself.
  const { groups } = await api<{ groups: { file: string; rules: { name: string; duration: number }[] }[] }>('rules?type=alert');
  expect(groups.map((g) => g.file)).toEqual([RULES]);
  const rule = groups[0].rules.find((r) => r.name === 'StaleLeases');
  expect(rule?.duration).toBe(30);

  const seen: string[] = [];
  let firing: Alert | undefined;
  await expect
    .poll(
      async () => {
        const { alerts } = await api<{ alerts: Alert[] }>('alerts');
        const stale = alerts.find((a) => a.labels.alertname === 'StaleLeases');
        if (stale && seen.at(-1) !== stale.state) seen.push(stale.state);
        if (stale?.state === 'firing') firing = stale;
        return stale?.state;
      },
      { timeout: 75_000, intervals: [1_000] },
    )
    .toBe('firing');
  // It waited its `for` as pending: the lease was stale first, the alert came after.
  expect(seen).toEqual(['pending', 'firing']);
  // Per database: the leak is on the primary (the only one here).
  expect(firing!.labels).toEqual({ alertname: 'StaleLeases', severity: 'warning', job: 'leasewatch', instance: INSTANCE, target: 'primary' });
  expect(firing!.annotations.summary).toBe(`Stale leases on ${INSTANCE} (primary)`);
  expect(firing!.annotations.description).toMatch(
    new RegExp(`^Leases on ${INSTANCE.replaceAll('.', '\\.')} \\(primary\\) have been held past LEASE_TIMEOUT \\(1 now\\): a leak`),
  );
  expect(firing!.annotations.runbook_url).toBe(
    'https://github.com/leasewatch/leasewatch/blob/main/README.md#what-each-recommendation-means-and-what-to-do',
  );
  // The same lease as Leasewatch's own status shows it.
  const status = await fetch(`http://${INSTANCE}/api/admin/background-jobs/status`, {
    headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
  });
  const leases = ((await status.json()) as { leases: { task: string; stale: boolean }[] }).leases;
  expect(leases.filter((l) => l.stale).map((l) => l.task)).toEqual(['leaky_report']);
});
