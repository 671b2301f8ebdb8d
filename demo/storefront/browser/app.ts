/**
 * The storefront page's script (bundled by the demo with esbuild). Fixed names that tests and
 * scripts rely on: buttons "Log in", "Log out", "Refresh", "Call the API as a service";
 * `data-testid` user-email, user-is-staff, user-permissions, service-result, error.
 * Every value is written with textContent, never as HTML.
 */
import { accessTokenExpiry, fetchMe, finishLogin, forgetAccessToken, logout, renewalCount, startLogin, type Me } from './session.ts';

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing #${id}`);
  return found;
}

function showError(message: string | null): void {
  const box = element('error');
  box.textContent = message ?? '';
  box.hidden = message === null;
}

/** Runs an action with its button disabled; a failure is shown on the page. */
function onClick(id: string, action: () => Promise<void>): void {
  const button = element(id) as HTMLButtonElement;
  button.addEventListener('click', () => {
    button.disabled = true;
    showError(null);
    action()
      .catch((e: unknown) => showError(e instanceof Error ? e.message : String(e)))
      .finally(() => {
        button.disabled = false;
      });
  });
}

function render(me: Me | null): void {
  element('signed-out').hidden = me !== null;
  element('signed-in').hidden = me === null;
  element('status').textContent = me ? `Logged in as ${me.email}.` : 'You are not logged in.';
  if (!me) return;
  element('user-email').textContent = me.email;
  element('user-is-staff').textContent = me.isStaff ? 'yes' : 'no';
  const codes = me.userPermissions.map((p) => p.code).sort();
  element('user-permissions').textContent = codes.length ? codes.join(', ') : 'none';
  const expiry = accessTokenExpiry();
  const renewed = renewalCount();
  element('token-info').textContent =
    `Access token valid until ${expiry ? expiry.toLocaleTimeString() : 'unknown'}; ` +
    `renewed with tokenRefresh ${renewed} time${renewed === 1 ? '' : 's'} since this page loaded.`;
}

async function showMe(): Promise<void> {
  render(await fetchMe());
}

interface ServiceCallAnswer {
  error?: string;
  token?: Record<string, unknown>;
  status?: number;
  plugins?: Array<{ id: string; name: string }>;
  body?: unknown;
}

async function callService(): Promise<void> {
  const out = element('service-result');
  out.textContent = 'Calling…';
  const response = await fetch('/service-call', { method: 'POST' });
  const answer = (await response.json()) as ServiceCallAnswer;
  if (answer.error) {
    out.textContent = `Failed: ${answer.error}`;
    return;
  }
  const lines = [
    `Provider token (client credentials): ${JSON.stringify(answer.token)}`,
    `API answered HTTP ${answer.status}.`,
    answer.plugins
      ? `Plugins visible to the service:\n${answer.plugins.map((p) => `- ${p.name} (${p.id})`).join('\n')}`
      : `No plugins returned: ${JSON.stringify(answer.body)}`,
  ];
  out.textContent = lines.join('\n');
}

async function main(): Promise<void> {
  onClick('login', startLogin);
  onClick('logout', async () => {
    const logoutUrl = await logout();
    if (logoutUrl) window.location.assign(logoutUrl);
    else render(null);
  });
  onClick('refresh', async () => {
    forgetAccessToken();
    await showMe();
  });
  onClick('service-call', callService);

  if (window.location.pathname === '/callback') {
    try {
      await finishLogin(new URLSearchParams(window.location.search));
    } catch (e) {
      showError(e instanceof Error ? e.message : String(e));
    } finally {
      // The code is single-use: keep it out of the address bar and the history.
      window.history.replaceState(null, '', '/');
    }
  }
  await showMe();
}

main().catch((e: unknown) => {
  element('status').textContent = 'The storefront could not reach the API.';
  showError(e instanceof Error ? e.message : String(e));
});
