/**
 * The demo (`npm run demo`) in a real Chromium: its fixture is the demo itself (startDemo with
 * random ports), the API on the embedded database, the demo OpenID provider, the storefront
 * page and @saleor/auth-sdk as bundled for the browser.
 *
 * Runs once: the demo never uses PostgreSQL, so vitest.config.ts leaves this file out of its
 * `postgresql` project. A missing /usr/bin/chromium skips it with a warning, or fails it when
 * REQUIRE_BROWSER=1 (CI). A failing step leaves a screenshot and names it in the error
 * (test/helpers/browser.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startDemo, type RunningDemo } from '../../demo/demo.ts';
import { chromiumStatus, launchChromium, requireChromium, Steps } from '../helpers/browser.ts';

const chromium = chromiumStatus();

const CUSTOMER = 'customer@example.com';
const STAFF = 'staff@example.com';

// Alone the file takes ~20 s; beside other e2e files (two at a time) each step is slower.
describe.skipIf(chromium.skip)('the demo in a real Chromium', { timeout: 60_000 }, () => {
  let demo: RunningDemo;
  let browser: Browser;
  const providerErrors: Error[] = [];
  const steps = new Steps('browser-demo');

  beforeAll(async () => {
    requireChromium(chromium);
    demo = await startDemo({
      apiPort: 0,
      providerPort: 0,
      storefrontPort: 0,
      logLevel: 'error',
      log: () => {},
      onProviderError: (e) => providerErrors.push(e),
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** A fresh browser (no cookies, no storage) for one account; page errors are collected. */
  async function freshPage(): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }> {
    const context = await browser.newContext();
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') pageErrors.push(`console.${m.type()}: ${m.text()}`);
    });
    return { context, page, pageErrors };
  }

  /** From the storefront to the provider's login form. */
  async function openLoginForm(page: Page): Promise<void> {
    await page.goto(demo.storefrontUrl);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('input[name="login"]').waitFor();
    expect(new URL(page.url()).origin).toBe(demo.providerUrl);
  }

  async function submitLogin(page: Page, login: string, password: string): Promise<void> {
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  /** The refresh token where @saleor/auth-sdk keeps it (localStorage, keyed by the API URL). */
  function storedRefreshToken(page: Page): Promise<string | null> {
    return page.evaluate(
      (key) => (globalThis as unknown as { localStorage: { getItem(k: string): string | null } }).localStorage.getItem(key),
      `${demo.apiUrl}+saleor_auth_module_refresh_token`,
    );
  }

  async function textOf(page: Page, testId: string): Promise<string | null> {
    const locator = page.getByTestId(testId);
    await locator.waitFor({ state: 'visible' });
    return locator.textContent();
  }

  it('logs the customer in and shows the email (a wrong password first shows the form again)', async () => {
    const { context, page, pageErrors } = await freshPage();
    try {
      await steps.run(page, 'customer: open the provider login form', () => openLoginForm(page));
      await steps.run(page, 'customer: wrong password', async () => {
        await submitLogin(page, CUSTOMER, 'not-the-password');
        expect(await page.getByRole('alert').textContent()).toBe('Wrong email or password.');
        expect(await page.locator('input[name="login"]').inputValue()).toBe(CUSTOMER);
      });
      await steps.run(page, 'customer: right password, back on the storefront', async () => {
        await submitLogin(page, CUSTOMER, demo.password);
        expect(await textOf(page, 'user-email')).toBe(CUSTOMER);
        expect(page.url()).toBe(demo.storefrontUrl);
        expect(await textOf(page, 'user-is-staff')).toBe('no');
        expect(await textOf(page, 'user-permissions')).toBe('none');
      });
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  describe('staff', () => {
    let context: BrowserContext;
    let page: Page;
    let pageErrors: string[];
    let refreshToken: string | null = null;

    beforeAll(async () => {
      ({ context, page, pageErrors } = await freshPage());
    });
    afterAll(async () => {
      await context?.close();
    });

    it('logs in and sees MANAGE_ORDERS among the permissions', async () => {
      await steps.run(page, 'staff: log in', async () => {
        await openLoginForm(page);
        await submitLogin(page, STAFF, demo.password);
        expect(await textOf(page, 'user-email')).toBe(STAFF);
      });
      await steps.run(page, 'staff: staff flag and permissions', async () => {
        expect(await textOf(page, 'user-is-staff')).toBe('yes');
        expect(await textOf(page, 'user-permissions')).toBe('MANAGE_ORDERS, MANAGE_PLUGINS');
      });
      expect(pageErrors).toEqual([]);
    });

    it('is still logged in after a reload (the SDK renews the access token with tokenRefresh)', async () => {
      await steps.run(page, 'staff: reload', async () => {
        await page.reload();
        expect(await textOf(page, 'user-email')).toBe(STAFF);
        expect(await textOf(page, 'user-permissions')).toBe('MANAGE_ORDERS, MANAGE_PLUGINS');
        // Only the refresh token survives a reload: the email came with a renewed access token.
        expect(await textOf(page, 'token-info')).toContain('renewed with tokenRefresh 1 time since this page loaded');
      });
      await steps.run(page, 'staff: Refresh', async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        await page.getByTestId('token-info').filter({ hasText: 'renewed with tokenRefresh 2 times' }).waitFor();
        expect(await textOf(page, 'user-email')).toBe(STAFF);
      });
      expect(pageErrors).toEqual([]);
    });

    it('logs out: back on the storefront logged out, the session ended at the API and at the provider', async () => {
      refreshToken = await storedRefreshToken(page);
      expect(refreshToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      await steps.run(page, 'staff: log out', async () => {
        await page.getByRole('button', { name: 'Log out' }).click();
        // Through the provider's end-session page, back to the storefront.
        await page.waitForURL(demo.storefrontUrl);
        await page.getByRole('button', { name: 'Log in' }).waitFor();
        expect(await page.getByTestId('auth-status').textContent()).toBe('You are not logged in.');
        expect(await page.getByTestId('user-email').isHidden()).toBe(true);
        expect(await storedRefreshToken(page)).toBeNull();
      });
      await steps.run(page, 'staff: the refresh token no longer works', async () => {
        const res = await fetch(demo.apiUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            query: 'mutation($t: String!) { tokenRefresh(refreshToken: $t) { token errors { field code } } }',
            variables: { t: refreshToken },
          }),
        });
        const body = (await res.json()) as { data: { tokenRefresh: { token: string | null; errors: Array<{ field: string; code: string }> } } };
        expect(body.data.tokenRefresh.token).toBeNull();
        expect(body.data.tokenRefresh.errors.map((e) => e.field)).toEqual(['refreshToken']);
      });
      await steps.run(page, 'staff: the provider asks for the password again', async () => {
        await page.getByRole('button', { name: 'Log in' }).click();
        await page.locator('input[name="password"]').waitFor();
        expect(new URL(page.url()).origin).toBe(demo.providerUrl);
      });
      expect(pageErrors).toEqual([]);
    });
  });

  it('shows the plugin list a service read with a client-credentials token', async () => {
    const { context, page, pageErrors } = await freshPage();
    try {
      await steps.run(page, 'service: call the API', async () => {
        await page.goto(demo.storefrontUrl);
        await page.getByRole('button', { name: 'Call the API as a service' }).click();
        const result = page.getByTestId('service-result');
        await result.filter({ hasText: 'API answered' }).waitFor();
        const text = await result.textContent();
        expect(text).toContain('API answered HTTP 200.');
        expect(text).toContain('- OpenID Connect (mirumee.authentication.openidconnect)');
        expect(text).toContain(`"aud":"${demo.apiUrl}"`);
        expect(text).toContain('"scope":"saleor:manage_plugins"');
      });
      expect(pageErrors).toEqual([]);
      expect(providerErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
