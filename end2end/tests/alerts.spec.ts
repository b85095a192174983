import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test, type Page } from '@playwright/test';
import { logIn } from './login';
import { ExtraServer } from './servers';
import { OPERATOR_TOKEN, VIEWER_TOKEN } from '../playwright.config';

// Alerts as an operator checks them: the demo's leaky task makes a stale lease within seconds
// (E2E_ENV), which fires the `stale_lease` alert; a webhook receiver started here takes the
// notifications (Alertmanager's webhook body) and can be told to fail.

/** A webhook receiver on an ephemeral loopback port: keeps every body, answers `status`. */
class WebhookReceiver {
  readonly bodies: any[] = [];
  status = 200;
  private server: Server | undefined;

  /** Starts it; its URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        try {
          this.bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          this.bodies.push({ unparsable: Buffer.concat(chunks).toString('utf8') });
        }
        res.writeHead(this.status).end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  /** The bodies whose alerts include one named `alertname`. */
  with(alertname: string): any[] {
    return this.bodies.filter((b) => b.alerts?.some((a: any) => a.labels?.alertname === alertname));
  }

  async stop() {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

const receiver = new WebhookReceiver();
let server: ExtraServer;

test.describe.configure({ mode: 'serial', timeout: 120_000 });

test.beforeAll(async () => {
  const url = await receiver.start();
  server = new ExtraServer(3222, {
    ALERT_WEBHOOK_URL: url,
    ALERT_GROUP_WAIT: '1s',
    ALERT_GROUP_INTERVAL: '1s',
    LEASEWATCH_VIEWER_TOKEN: VIEWER_TOKEN,
  });
  await server.start();
});

test.afterAll(async () => {
  await server?.remove();
  await receiver.stop();
});

/** The alerts section. */
const alerts = (page: Page) => page.locator('section[aria-labelledby="alerts-title"]');

test('a stale lease fires an alert, delivered to the webhook in Alertmanager\'s format', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const section = alerts(page);
  await expect(section.getByRole('heading', { name: 'Alerts', level: 2 })).toBeVisible();
  // The leaky task's first run comes within its 20 s interval; its lease is stale 3 s later.
  const firing = section.locator('table.firing tr[data-alert="stale_lease"]');
  await expect(firing).toBeVisible({ timeout: 45_000 });
  await expect(firing).toHaveAttribute('data-task', 'leaky_report');
  await expect(firing.locator('td[data-label="Severity"]')).toHaveText('WARNING');
  await expect(firing.locator('td[data-label="Task"]')).toHaveText('leaky_report');
  await expect(firing.locator('td[data-label="Summary"]')).not.toBeEmpty();
  // How long it has fired, the instant on hover.
  await expect(firing.locator('td[data-label="Since"]')).toHaveText(/^(just now|\d+ s ago|\d+ min ago)$/);
  await expect(firing.locator('td[data-label="Since"] time')).toHaveAttribute('title', /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);

  // The receiver, named by kind and host (never its path), with what it accepted.
  const name = `webhook 127.0.0.1:${receiver.port}`;
  const listed = section.locator(`.receivers li[data-receiver="${name}"]`);
  await expect(listed).toContainText(name);
  await expect(listed).not.toContainText('/hook');

  // The firing notification shows as delivered, after group_wait (1 s).
  const delivered = section.locator('table.notifications tr[data-kind="firing"][data-status="delivered"]').first();
  await expect(delivered).toBeVisible({ timeout: 15_000 });
  await expect(delivered.locator('td[data-label="Receiver"]')).toHaveText(name);
  await expect(delivered.locator('td[data-label="Delivery"]')).toHaveText(/^delivered \(\d+ attempts?\)$/);
  await expect(listed.locator('[data-count="delivered"]')).toHaveText(/^[1-9]\d* delivered$/);

  // And the receiver really got Alertmanager's webhook body (version 4) with the alert.
  await expect.poll(() => receiver.with('stale_lease').length).toBeGreaterThan(0);
  const body = receiver.with('stale_lease')[0];
  expect(body.version).toBe('4');
  expect(body.status).toBe('firing');
  expect(body.receiver).toBe(name);
  const alert = body.alerts.find((a: any) => a.labels.alertname === 'stale_lease');
  expect(alert).toMatchObject({ status: 'firing', labels: { alertname: 'stale_lease', task: 'leaky_report', severity: 'warning' } });

  // The server renders the section with its data: it is there before any script runs.
  const html = await (await page.request.get(`${server.base}/`)).text();
  expect(html).toContain('<h2 id="alerts-title">Alerts</h2>');
  expect(html).toMatch(/<tr class="severity warning" data-alert="stale_lease" data-task="leaky_report">/);
  expect(html).toMatch(/<tr data-status="delivered" data-kind="firing"/);
  // The operator's button, off until the page is hydrated.
  expect(html).toMatch(/<button data-control="test_notification"[^>]*\bdisabled\b[^>]*>Send test notification<\/button>/);
});

test('an operator sends a test notification: the receiver gets it, and the page and the audit log say so', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const section = alerts(page);
  const before = receiver.with('test_notification').length;
  const tests = section.locator('table.notifications tbody tr[data-kind="test"]');
  const listedBefore = await tests.count();
  const button = section.getByRole('button', { name: 'Send test notification' });
  await button.click();
  const feedback = section.locator('[data-feedback="ok"]');
  await expect(feedback).toHaveText(
    new RegExp(`^Test notification: test notification queued for 1 receiver\\(s\\): webhook 127\\.0\\.0\\.1:${receiver.port}`),
  );
  await expect(page.getByRole('status')).toContainText('Test notification: test notification queued');
  await expect(button).toBeFocused();

  await expect.poll(() => receiver.with('test_notification').length).toBe(before + 1);
  const body = receiver.with('test_notification').at(-1);
  expect(body.version).toBe('4');
  expect(body.alerts).toHaveLength(1);
  expect(body.alerts[0].labels).toMatchObject({ alertname: 'test_notification', service: 'leasewatch', severity: 'info' });

  // A new row, newest first.
  await expect(tests).toHaveCount(listedBefore + 1);
  const row = tests.first();
  await expect(row).toHaveAttribute('data-status', 'delivered');
  await expect(row.locator('td[data-label="Alerts"]')).toHaveText('1');
  await expect(row.locator('td[data-label="Delivery"]')).toHaveText('delivered (1 attempt)');

  // Audited as every action is: by the operator, done.
  const audited = page.locator('table.audit tbody tr').first();
  await expect(audited).toContainText('test notification');
  await expect(audited).toHaveAttribute('data-outcome', 'ok');
  await expect(audited).toHaveAttribute('data-actor', 'operator');
});

test('a receiver that fails shows the notification pending with its attempts and error, then delivered', async ({ page }) => {
  await logIn(page, OPERATOR_TOKEN, server.base);
  const section = alerts(page);
  receiver.status = 500;
  try {
    await section.getByRole('button', { name: 'Send test notification' }).click();
    await expect(section.locator('[data-feedback="ok"]')).toContainText('test notification queued');
    const row = section.locator('table.notifications tbody tr[data-kind="test"]').first();
    await expect(row).toHaveAttribute('data-status', 'pending');
    const delivery = row.locator('td[data-label="Delivery"]');
    await expect(delivery).toContainText(/pending: \d+ attempts? failed/);
    await expect(delivery.locator('[data-last-error]')).toHaveText('Last error: HTTP 500 Internal Server Error');
    await expect(delivery.locator('[data-next-attempt]')).toHaveText(/^Next attempt (in \d+ s|due now)$/);
    await expect(section.locator('.receivers [data-count="failed"]')).toHaveText(/^[1-9]\d* failed attempts?$/);
  } finally {
    receiver.status = 200;
  }
  // Retried with backoff (1 s doubling, jittered): delivered once the receiver answers again.
  const row = section.locator('table.notifications tbody tr[data-kind="test"]').first();
  await expect(row).toHaveAttribute('data-status', 'delivered', { timeout: 30_000 });
  await expect(row.locator('td[data-label="Delivery"]')).toHaveText(/^delivered \([2-9]\d* attempts\)$/);
});

test('a viewer sees the alerts and the test notification disabled, as every action', async ({ page }) => {
  await logIn(page, VIEWER_TOKEN, server.base);
  const section = alerts(page);
  await expect(section.locator('table.firing tr[data-alert="stale_lease"]')).toBeVisible();
  await expect(section.locator('table.notifications tbody tr').first()).toBeVisible();
  await expect(section.locator('.receivers li')).toHaveCount(1);
  await expect(section.getByRole('button', { name: 'Send test notification' })).toBeDisabled();
  await expect(page.getByText('Read-only: you are logged in as a viewer.')).toBeVisible();
});

test('on a phone each alert and notification is a labelled card, readable and within the screen', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await logIn(page, OPERATOR_TOKEN, server.base);
  const section = alerts(page);
  const firing = section.locator('table.firing tr[data-alert="stale_lease"]');
  await firing.scrollIntoViewIfNeeded();
  await expect(firing.locator('td[data-label="Task"]')).toHaveCSS('display', 'block');
  expect(await firing.locator('td[data-label="Task"]').evaluate((el) => getComputedStyle(el, '::before').content)).toBe('"Task: "');
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth)).toBe(true);
  // Nothing in the section reaches past the screen, and no text is smaller than 11 px.
  const texts = await section.evaluate((root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found: { text: string; px: number; right: number }[] = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement!;
      // The tables' headers are visually hidden on a phone: each cell says what it is.
      if (!node.textContent?.trim() || !parent.checkVisibility() || parent.closest('thead')) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const box = range.getBoundingClientRect();
      found.push({ text: node.textContent.trim().slice(0, 40), px: parseFloat(getComputedStyle(parent).fontSize), right: box.right });
    }
    return found;
  });
  expect(texts.length).toBeGreaterThan(10);
  for (const t of texts) {
    expect(t.px, `"${t.text}": size`).toBeGreaterThanOrEqual(11);
    expect(t.right, `"${t.text}": inside the screen`).toBeLessThanOrEqual(390);
  }
  const button = (await section.getByRole('button', { name: 'Send test notification' }).boundingBox())!;
  expect(button.height).toBeGreaterThanOrEqual(44);
  expect(button.x + button.width).toBeLessThanOrEqual(390);
});

test('with no receiver configured the page says which variables to set, and a test is refused', async ({ page }) => {
  // The shared server has no ALERT_* receivers.
  await logIn(page);
  const section = alerts(page);
  const none = section.locator('[data-receivers="none"]');
  await expect(none).toContainText('No receiver configured');
  for (const variable of ['ALERT_WEBHOOK_URL', 'ALERT_ALERTMANAGER_URL', 'ALERT_CHAT_WEBHOOK_URL']) {
    await expect(none.locator('code', { hasText: variable })).toBeVisible();
  }
  await section.getByRole('button', { name: 'Send test notification' }).click();
  await expect(section.locator('[data-feedback="error"]')).toHaveText(
    'Test notification: no alert receiver is configured: set ALERT_WEBHOOK_URL, ALERT_ALERTMANAGER_URL or ALERT_CHAT_WEBHOOK_URL',
  );
  // Refused, and audited as refused.
  const audited = page.locator('table.audit tbody tr').first();
  await expect(audited).toContainText('test notification');
  await expect(audited).toHaveAttribute('data-outcome', 'refused');
  await expect(section.locator('table.notifications')).toHaveCount(0);
  await expect(section.locator('[data-notifications="none"]')).toHaveText('No notification has been sent yet.');
});
