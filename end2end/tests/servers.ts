import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { E2E_ENV, OPERATOR_TOKEN } from '../playwright.config';

/**
 * A second release server in demo mode on its own port and SQLite file, for states the shared
 * server must not be put in (a short session, an exhausted pool, a server that goes away).
 * `env` is added to the shared server's E2E_ENV.
 */
export class ExtraServer {
  readonly base: string;
  private dir: string;
  private child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    private env: Record<string, string> = {},
  ) {
    this.base = `http://127.0.0.1:${port}`;
    this.dir = mkdtempSync(join(tmpdir(), `leasewatch-e2e-${port}-`));
  }

  async start() {
    this.child = spawn('target/release/leasewatch', ['--demo'], {
      cwd: '..',
      env: {
        ...process.env,
        ...E2E_ENV,
        BIND_ADDR: `127.0.0.1:${this.port}`,
        DATABASE_URL: `sqlite://${join(this.dir, 'leasewatch.db')}`,
        LEASEWATCH_OPERATOR_TOKEN: OPERATOR_TOKEN,
        RUST_LOG: 'warn',
        ...this.env,
      },
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${this.base}/healthz`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the server on port ${this.port} did not start within 10 s`);
  }

  async stop() {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  /** Stops the server and removes its database. */
  async remove() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
