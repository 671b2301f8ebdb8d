/**
 * The demo provider's two accounts and what each may be granted. Development only: the
 * passwords are printed by the demo and compared in constant time only out of habit.
 *
 * Scopes: the API asks for every `saleor:<permission>` scope and `saleor:staff` at login
 * (saleor-contract.md section 5, `use_oauth_scope_permissions`); an account is granted only
 * the `saleor:` scopes listed here, the others are recorded as refused (a partial consent).
 */
import { timingSafeEqual } from 'node:crypto';

export interface DemoAccount {
  /** Stable subject identifier (`sub`). */
  sub: string;
  email: string;
  givenName: string;
  familyName: string;
  password: string;
  /** The `saleor:` scopes this account may be granted. */
  saleorScopes: readonly string[];
  /** One line for the console and the login page. */
  description: string;
}

export const DEMO_PASSWORD = 'demo';

export const DEMO_ACCOUNTS: readonly DemoAccount[] = [
  {
    sub: 'demo-customer',
    email: 'customer@example.com',
    givenName: 'Casey',
    familyName: 'Customer',
    password: DEMO_PASSWORD,
    saleorScopes: [],
    description: 'a customer: no staff flag, no permissions',
  },
  {
    sub: 'demo-staff',
    email: 'staff@example.com',
    givenName: 'Sam',
    familyName: 'Staff',
    password: DEMO_PASSWORD,
    saleorScopes: ['saleor:staff', 'saleor:manage_orders', 'saleor:manage_plugins'],
    description: 'staff with MANAGE_ORDERS and MANAGE_PLUGINS',
  },
];

/** Saleor's 25 permission codenames (saleor-contract.md section 5), offered as `saleor:<codename>`. */
const SALEOR_PERMISSION_CODENAMES = [
  'manage_users', 'manage_staff', 'impersonate_user', 'manage_apps', 'manage_observability',
  'manage_checkouts', 'handle_checkouts', 'handle_taxes', 'manage_taxes', 'manage_channels',
  'manage_customer_types_and_attributes', 'manage_discounts', 'manage_gift_card', 'manage_menus',
  'manage_orders', 'manage_orders_import', 'manage_pages', 'manage_page_types_and_attributes',
  'handle_payments', 'manage_plugins', 'manage_products', 'manage_product_types_and_attributes',
  'manage_shipping', 'manage_settings', 'manage_translations',
] as const;

/** Every scope the provider knows besides the standard ones. */
export const SALEOR_SCOPES: readonly string[] = [
  ...SALEOR_PERMISSION_CODENAMES.map((c) => `saleor:${c}`),
  'saleor:staff',
];

export function findAccountBySub(sub: string): DemoAccount | undefined {
  return DEMO_ACCOUNTS.find((a) => a.sub === sub);
}

/** The account whose email (case-insensitive) and password match, if any. */
export function checkCredentials(login: string, password: string): DemoAccount | undefined {
  const account = DEMO_ACCOUNTS.find((a) => a.email === login.trim().toLowerCase());
  if (!account) return undefined;
  const given = Buffer.from(password);
  const expected = Buffer.from(account.password);
  return given.length === expected.length && timingSafeEqual(given, expected) ? account : undefined;
}

/**
 * Splits requested scopes into those granted and those refused for an account: `saleor:`
 * scopes only when listed for it; every other scope (openid, email, profile, offline_access)
 * is granted.
 */
export function decideScopes(account: DemoAccount, requested: readonly string[]): { granted: string[]; refused: string[] } {
  const allowed = new Set(account.saleorScopes);
  const granted: string[] = [];
  const refused: string[] = [];
  for (const scope of requested) {
    if (scope.startsWith('saleor:') && !allowed.has(scope)) refused.push(scope);
    else granted.push(scope);
  }
  return { granted, refused };
}
