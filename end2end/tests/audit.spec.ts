import { expect, test } from '@playwright/test';
import { logIn } from './login';
import { OPERATOR_TOKEN } from '../playwright.config';

const status = '/api/admin/background-jobs/status';

test('the audit log dates its entries and lists previews as previews', async ({ page }) => {
  await logIn(page);
  await page.locator('[data-control="cleanup"]').click();
  await page.locator('[data-preview="cleanup"]').getByRole('button', { name: 'Cancel' }).click();
  const preview = page.locator('table.audit tr[data-dry-run="true"]').first();
  await expect(preview).toContainText('cleanup');
  await expect(preview).toContainText('preview');
  await expect(preview.locator('td').nth(3)).toHaveText(/^preview only, nothing changed: would revoke/);
  await expect(preview.locator('td').nth(3)).not.toContainText('ok:');
  // Just made: how long ago. The date as well as the time on hover (entries outlive a day and a
  // restart), local then UTC.
  const today = new Date().toISOString().slice(0, 10);
  await expect(preview.locator('td.when')).toHaveText(/^(just now|\d+ s ago)$/);
  await expect(preview.locator('td.when time')).toHaveAttribute(
    'title',
    new RegExp(`^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} UTC\\+05:30 · ${today} \\d{2}:\\d{2}:\\d{2} UTC$`),
  );
  // An action that ran reads as one.
  await page.locator('[data-control="cleanup"]').click();
  await page.locator('[data-preview="cleanup"]').getByRole('button', { name: 'Confirm cleanup' }).click();
  const done = page.locator('table.audit tbody tr').first();
  await expect(done).not.toHaveAttribute('data-dry-run');
  await expect(done.locator('td').nth(3)).toHaveText(/^ok: revoked \d+ lease/);
  await expect(done.locator('td').nth(1)).toHaveText('operator');
});

test('a very long value is cut and wraps inside its column, whole on demand', async ({ page, request }) => {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 800 });
    await logIn(page);
    // A well-formed task name that does not exist: refused, and audited with the name twice
    // (arguments and result), one unbroken 64-character word each.
    const name = 'z'.repeat(64);
    const refused = await request.post(status, {
      headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
      data: { action: 'pause', task: name },
    });
    expect(refused.status()).toBe(400);
    const row = page.locator('table.audit tbody tr', { hasText: name.slice(0, 20) }).first();
    await expect(row).toBeVisible();
    await expect(row).toHaveAttribute('data-outcome', 'refused');
    const cell = row.locator('td').nth(3);
    const summary = cell.locator('details.clip summary');
    await expect(summary).toHaveText(/…$/);
    expect((await summary.textContent())!.length).toBeLessThanOrEqual(121);
    const whole = cell.locator('.whole');
    await expect(whole).toBeHidden();
    await summary.click();
    await expect(whole).toBeVisible();
    await expect(whole).toContainText('the tasks are');
    // Nothing reaches past its column, the table or the window.
    const table = (await page.locator('table.audit').boundingBox())!;
    for (const td of await row.locator('td').all()) {
      const box = (await td.boundingBox())!;
      expect(box.x + box.width, `${width}: a cell`).toBeLessThanOrEqual(table.x + table.width + 1);
    }
    const section = (await page.locator('section[aria-labelledby="audit-title"]').boundingBox())!;
    expect(table.x + table.width, `${width}: the table`).toBeLessThanOrEqual(section.x + section.width + 1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), `${width}: the page`).toBe(true);
  }
});
