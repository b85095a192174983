import { expect, type Page } from '@playwright/test';
import { OPERATOR_TOKEN } from '../playwright.config';

/**
 * Logs in through the login form, as a person does, then lands on the dashboard, hydrated
 * unless `hydrated` is false (a page without JavaScript).
 */
export async function logIn(page: Page, token = OPERATOR_TOKEN, base = '', hydrated = true) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/$/);
  if (hydrated) {
    await expect(page.locator('main.monitor')).toHaveAttribute('data-hydrated', 'true');
  }
}
