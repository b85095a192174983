// The browser's time zone in these tests (playwright.config.ts), and an instant's words in a
// zone as the page writes them, computed with the platform's own time-zone data.

/** The zone the browser runs in: UTC+05:30 all year, so no test passes by reading UTC as local. */
export const BROWSER_ZONE = 'Asia/Kolkata';

/** "HH:MM:SS" of an ISO instant in a zone. */
export function clockIn(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
}

/** "YYYY-MM-DD HH:MM:SS" of an ISO instant in a zone. */
export function dateTimeIn(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso));
  const part = (type: string) => parts.find((p) => p.type === type)!.value;
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}:${part('second')}`;
}
