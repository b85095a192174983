import type { Page } from '@playwright/test';

/** A control on the page and where it is, in page coordinates. */
export interface Target {
  name: string;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Every visible control (buttons, links, disclosure summaries, fields, menus) on the page. */
export function targets(page: Page): Promise<Target[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('body button, body a[href], body summary, body input, body select')]
      // Not hidden, nor visually hidden until focused (1×1 and clipped, as the charts' skip links).
      .filter((el) => (el as HTMLElement).checkVisibility() && el.getBoundingClientRect().width > 1)
      .map((el) => {
        const r = el.getBoundingClientRect();
        return {
          name: (el.getAttribute('aria-label') ?? el.closest('label')?.textContent ?? el.textContent ?? '').trim().slice(0, 40),
          left: r.left + scrollX,
          right: r.right + scrollX,
          top: r.top + scrollY,
          bottom: r.bottom + scrollY,
        };
      }),
  );
}

/** The gap between two boxes (0 when they touch or overlap). */
export function gap(a: Target, b: Target): number {
  const dx = Math.max(0, b.left - a.right, a.left - b.right);
  const dy = Math.max(0, b.top - a.bottom, a.top - b.bottom);
  return Math.max(dx, dy);
}

/** WCAG's contrast ratio of two `rgb(...)`/`rgba(...)` colours (alpha ignored). */
export function contrast(a: string, b: string): number {
  const luminance = (css: string) => {
    const [r, g, bl] = css.match(/[\d.]+/g)!.slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
