import { defineConfig } from '@playwright/test';
import { BROWSER_ZONE } from './tests/zone';

// One release build (made by scripts/test) serves every test: the server runs in demo mode on
// its own SQLite file under target/e2e, recreated for each run.
const port = Number(process.env.E2E_PORT ?? 3217);
export const OPERATOR_TOKEN = 'e2e-operator-token-0123456789';
export const VIEWER_TOKEN = 'e2e-viewer-token-0123456789';
/** Fast polling, a demo task that leaks its connection, and short lines, so states show in seconds. */
export const E2E_ENV = {
  DASHBOARD_POLL_INTERVAL: '1s',
  DEMO_LEAK_HOLD: '60s',
  LEASE_TIMEOUT: '3s',
  CLEANUP_INTERVAL: '1h',
  REC_HOLD: '0s',
  REC_CLEAR: '2s',
};

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: 'list',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    // The dashboard shows times in the browser's zone: one half an hour off UTC, so no test
    // passes by taking UTC for local or missing a minute of the offset.
    timezoneId: BROWSER_ZONE,
    // Debian's Chromium: Playwright's own browser download is not reachable here.
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: {
    command: 'rm -rf target/e2e && exec target/release/leasewatch --demo',
    cwd: '..',
    url: `http://127.0.0.1:${port}/`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      BIND_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: 'sqlite://target/e2e/leasewatch.db',
      RUST_LOG: 'info,sqlx=warn',
      LEASEWATCH_OPERATOR_TOKEN: OPERATOR_TOKEN,
      LEASEWATCH_VIEWER_TOKEN: VIEWER_TOKEN,
      ...E2E_ENV,
    },
  },
});
