/**
 * HTML of the demo provider's own pages: the login form (fields `login` and `password`, fixed
 * names that scripts rely on), the logout confirmation (submitted by itself), and the error
 * page. Plain HTML without external resources; every interpolated value is escaped.
 */
import { DEMO_ACCOUNTS, DEMO_PASSWORD } from './accounts.ts';

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}.note{color:#555;font-size:.9rem}code{background:#eee;padding:0 .2rem}`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>`;
}

export interface LoginPageOptions {
  /** Where the form posts (the interaction's login URL). */
  action: string;
  /** Where "Cancel" goes (the interaction's abort URL). */
  abort: string;
  clientName: string;
  /** What was typed last time (kept after a wrong password). */
  login?: string;
  error?: string;
}

export function loginPage(options: LoginPageOptions): string {
  const accounts = DEMO_ACCOUNTS.map((a) => `<li><code>${escapeHtml(a.email)}</code>: ${escapeHtml(a.description)}</li>`).join('');
  const error = options.error ? `<p class="error" role="alert">${escapeHtml(options.error)}</p>` : '';
  return page(
    'Sign in: demo OpenID provider',
    `<h1>Sign in to continue to ${escapeHtml(options.clientName)}</h1>
<p class="note">Demo OpenID provider (development only).</p>
${error}
<form method="post" action="${escapeHtml(options.action)}" autocomplete="off">
  <label for="login">Email</label>
  <input id="login" name="login" type="email" required autofocus value="${escapeHtml(options.login ?? '')}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button type="submit">Sign in</button>
</form>
<p><a href="${escapeHtml(options.abort)}">Cancel</a></p>
<p class="note">Accounts (password <code>${escapeHtml(DEMO_PASSWORD)}</code>):</p><ul class="note">${accounts}</ul>`,
  );
}

/**
 * RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2): oidc-provider hands over
 * its confirmation `<form id="op.logoutForm">` (holding the xsrf field); the demo confirms by
 * itself, so the user lands back on the storefront without a click. The button stays for
 * browsers without JavaScript.
 */
export function logoutPage(form: string): string {
  return page(
    'Signing out: demo OpenID provider',
    `<h1>Signing you out of the demo provider…</h1>
${form}
<button id="logout-confirm" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<script>document.getElementById('logout-confirm').click();</script>`,
  );
}

/** Shown after a logout that names no post_logout_redirect_uri. */
export function loggedOutPage(): string {
  return page('Signed out: demo OpenID provider', '<h1>You are signed out of the demo provider.</h1>');
}

export function errorPage(out: Record<string, unknown>): string {
  const rows = Object.entries(out)
    .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(String(value))}</p>`)
    .join('');
  return page('Error: demo OpenID provider', `<h1>Something went wrong</h1>${rows}`);
}
