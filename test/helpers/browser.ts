/**
 * A real Chromium for browser tests: Debian's /usr/bin/chromium driven by playwright-core,
 * never a downloaded browser.
 *
 * - {@link chromiumStatus}: whether the browser is there, and whether it must be
 *   (REQUIRE_BROWSER=1, set by .ci/run). A developer machine without it skips the browser
 *   tests with a loud warning; CI fails with a clear message ({@link requireChromium}).
 * - {@link launchChromium}: headless, no sandbox (containers run as root), nothing that calls
 *   home (component updates, sync, background networking, QUIC).
 * - {@link Steps}: named steps; a failing step saves a full-page screenshot under
 *   os.tmpdir()/browser-test-screenshots/ and names the file in the error.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
];

export interface ChromiumStatus {
  present: boolean;
  /** REQUIRE_BROWSER=1: a missing browser is a failure, not a skip. */
  required: boolean;
  /** Skip the browser tests (missing and not required); a warning has been printed. */
  skip: boolean;
}

export function chromiumStatus(): ChromiumStatus {
  const present = existsSync(CHROMIUM_PATH);
  const required = process.env['REQUIRE_BROWSER'] === '1';
  const skip = !present && !required;
  if (skip) {
    console.warn(
      [
        '',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        `!! SKIPPING THE BROWSER TESTS: ${CHROMIUM_PATH} is missing.`,
        '!! Install Debian\'s chromium (apt-get install chromium) to run them; CI sets REQUIRE_BROWSER=1',
        '!! and fails instead of skipping.',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        '',
      ].join('\n'),
    );
  }
  return { present, required, skip };
}

/** Throws the message CI shows when the browser is required but missing. */
export function requireChromium(status: ChromiumStatus): void {
  if (!status.present) {
    throw new Error(
      `REQUIRE_BROWSER=1 but ${CHROMIUM_PATH} does not exist: install Debian's chromium ` +
        '(apt-get install -y --no-install-recommends chromium; .ci/run does it) — never a downloaded browser.',
    );
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

/**
 * Named steps of one test file. A step that fails leaves a screenshot of its page; the error
 * keeps its message and stack, with the step, the page's URL and the screenshot's path added.
 */
export class Steps {
  #dir: string | undefined;
  #count = 0;

  constructor(private readonly suite: string) {}

  /** Created at the first failure only, so passing runs leave nothing behind. */
  private dir(): string {
    if (!this.#dir) {
      const root = path.join(os.tmpdir(), 'browser-test-screenshots');
      mkdirSync(root, { recursive: true });
      this.#dir = mkdtempSync(path.join(root, `${slug(this.suite)}-`));
    }
    return this.#dir;
  }

  async run<T>(page: Page, name: string, action: () => Promise<T>): Promise<T> {
    const index = ++this.#count;
    try {
      return await action();
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      let note: string;
      try {
        const file = path.join(this.dir(), `${String(index).padStart(2, '0')}-${slug(name)}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
        note = `screenshot: ${file}`;
      } catch (shotError) {
        note = `no screenshot: ${(shotError as Error).message}`;
      }
      error.message = `step "${name}" failed at ${page.url()}: ${error.message}\n  ${note}`;
      throw error;
    }
  }
}
