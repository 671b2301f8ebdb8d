/**
 * Saleor's permission catalogue and the parsing of OAuth scopes / `permissions` claims into
 * Saleor permissions.
 *
 * The list, its order and the human-readable names follow Saleor: the enum classes in
 * `saleor/permission/enums.py` give the codenames (the GraphQL `PermissionEnum` value is the
 * codename upper-cased), and each Django model's `Meta.permissions` gives the name Saleor
 * stores in `auth_permission.name` and returns as `Permission.name` in GraphQL.
 *
 * Scope parsing follows Saleor's OpenID Connect plugin (`saleor:<codename>` scopes and the
 * `saleor:staff` marker), with one deliberate difference: Saleor detects staff with a
 * substring test on the whole scope string, we require the whole token `saleor:staff`
 * (see docs/saleor-contract.md §5).
 *
 * @module
 */

/**
 * The 25 Saleor permission enum codes (`PermissionEnum` in Saleor's GraphQL schema), in
 * Saleor's canonical order. Each code is the Django codename upper-cased.
 */
export const PERMISSION_CODES = [
  'MANAGE_USERS',
  'MANAGE_STAFF',
  'IMPERSONATE_USER',
  'MANAGE_APPS',
  'MANAGE_OBSERVABILITY',
  'MANAGE_CHECKOUTS',
  'HANDLE_CHECKOUTS',
  'HANDLE_TAXES',
  'MANAGE_TAXES',
  'MANAGE_CHANNELS',
  'MANAGE_CUSTOMER_TYPES_AND_ATTRIBUTES',
  'MANAGE_DISCOUNTS',
  'MANAGE_GIFT_CARD',
  'MANAGE_MENUS',
  'MANAGE_ORDERS',
  'MANAGE_ORDERS_IMPORT',
  'MANAGE_PAGES',
  'MANAGE_PAGE_TYPES_AND_ATTRIBUTES',
  'HANDLE_PAYMENTS',
  'MANAGE_PLUGINS',
  'MANAGE_PRODUCTS',
  'MANAGE_PRODUCT_TYPES_AND_ATTRIBUTES',
  'MANAGE_SHIPPING',
  'MANAGE_SETTINGS',
  'MANAGE_TRANSLATIONS',
] as const;

/** One of Saleor's permission enum codes, e.g. `'MANAGE_USERS'`. */
export type PermissionCode = (typeof PERMISSION_CODES)[number];

/**
 * Human-readable names as Saleor defines them in the models' `Meta.permissions`
 * (punctuation included: Saleor is inconsistent about trailing full stops and we keep its
 * strings verbatim so clients comparing names see the same text).
 */
const PERMISSION_NAMES: Readonly<Record<PermissionCode, string>> = {
  // saleor/account/models.py (User.Meta)
  MANAGE_USERS: 'Manage customers.',
  MANAGE_STAFF: 'Manage staff.',
  IMPERSONATE_USER: 'Impersonate user.',
  // saleor/app/models.py (App.Meta)
  MANAGE_APPS: 'Manage apps',
  MANAGE_OBSERVABILITY: 'Manage observability',
  // saleor/checkout/models.py (Checkout.Meta)
  MANAGE_CHECKOUTS: 'Manage checkouts',
  HANDLE_CHECKOUTS: 'Handle checkouts',
  HANDLE_TAXES: 'Handle taxes',
  MANAGE_TAXES: 'Manage taxes',
  // saleor/channel/models.py (Channel.Meta)
  MANAGE_CHANNELS: 'Manage channels.',
  // saleor/account (CustomerType; Saleor 3.23 migration that creates the permission)
  MANAGE_CUSTOMER_TYPES_AND_ATTRIBUTES: 'Manage customer types and attributes.',
  // saleor/discount/models.py (Promotion.Meta; before promotions, Sale.Meta said
  // "Manage sales and vouchers.")
  MANAGE_DISCOUNTS: 'Manage promotions and vouchers.',
  // saleor/giftcard/models.py (GiftCard.Meta)
  MANAGE_GIFT_CARD: 'Manage gift cards.',
  // saleor/menu/models.py (Menu.Meta)
  MANAGE_MENUS: 'Manage navigation.',
  // saleor/order/models.py (Order.Meta)
  MANAGE_ORDERS: 'Manage orders.',
  MANAGE_ORDERS_IMPORT: 'Manage orders import.',
  // saleor/page/models.py (Page.Meta, PageType.Meta)
  MANAGE_PAGES: 'Manage pages.',
  MANAGE_PAGE_TYPES_AND_ATTRIBUTES: 'Manage page types and attributes.',
  // saleor/payment/models.py (TransactionItem.Meta)
  HANDLE_PAYMENTS: 'Handle payments',
  // saleor/plugins/models.py (PluginConfiguration.Meta)
  MANAGE_PLUGINS: 'Manage plugins',
  // saleor/product/models.py (Product.Meta, ProductType.Meta)
  MANAGE_PRODUCTS: 'Manage products.',
  MANAGE_PRODUCT_TYPES_AND_ATTRIBUTES: 'Manage product types and attributes.',
  // saleor/shipping/models.py (ShippingZone.Meta)
  MANAGE_SHIPPING: 'Manage shipping.',
  // saleor/site/models.py (SiteSettings.Meta)
  MANAGE_SETTINGS: 'Manage settings.',
  MANAGE_TRANSLATIONS: 'Manage translations.',
};

/** A permission as Saleor describes it. */
export interface PermissionInfo {
  /** The GraphQL `PermissionEnum` value, e.g. `'MANAGE_USERS'`. */
  readonly code: PermissionCode;
  /** The Django codename (the code lower-cased), e.g. `'manage_users'`. */
  readonly codename: string;
  /** Saleor's human-readable name, e.g. `'Manage customers.'`. */
  readonly name: string;
}

/** Every Saleor permission with its codename and name, in canonical order. */
export const PERMISSIONS: ReadonlyArray<PermissionInfo> = Object.freeze(
  PERMISSION_CODES.map((code) =>
    Object.freeze({ code, codename: code.toLowerCase(), name: PERMISSION_NAMES[code] }),
  ),
);

/** The scope that marks a user as staff. It is not a permission. */
export const STAFF_SCOPE = 'saleor:staff';

/** Prefix of every Saleor scope (`saleor:<codename>`). */
const SCOPE_PREFIX = 'saleor:';

const CODE_SET: ReadonlySet<string> = new Set(PERMISSION_CODES);

/** codename → code; a Map so that inherited names such as `constructor` never match. */
const CODE_BY_CODENAME: ReadonlyMap<string, PermissionCode> = new Map(
  PERMISSIONS.map((p) => [p.codename, p.code]),
);

/** Canonical position of each code, for sorting. */
const ORDER: ReadonlyMap<PermissionCode, number> = new Map(
  PERMISSION_CODES.map((code, index) => [code, index]),
);

/**
 * Whether `s` is exactly one of the 25 permission codes (case-sensitive: `'manage_users'`
 * is a codename, not a code).
 */
export function isPermissionCode(s: string): s is PermissionCode {
  return CODE_SET.has(s);
}

/** Saleor's human-readable name of a permission, e.g. `'Manage staff.'` for `MANAGE_STAFF`. */
export function permissionName(code: PermissionCode): string {
  return PERMISSION_NAMES[code];
}

/**
 * Deduplicates permission codes and returns them in Saleor's canonical order
 * ({@link PERMISSION_CODES}). Values that are not permission codes (possible only by
 * bypassing the type system) are dropped.
 */
export function sortPermissions(codes: Iterable<PermissionCode>): PermissionCode[] {
  const unique = new Set<PermissionCode>();
  for (const code of codes) {
    if (ORDER.has(code)) unique.add(code);
  }
  return [...unique].sort((a, b) => (ORDER.get(a) ?? 0) - (ORDER.get(b) ?? 0));
}

/**
 * Every scope this server understands, for discovery documents and authorization requests:
 * `saleor:<codename>` for each permission in canonical order, then {@link STAFF_SCOPE}.
 */
export function permissionScopes(): string[] {
  return [...PERMISSIONS.map((p) => SCOPE_PREFIX + p.codename), STAFF_SCOPE];
}

/** What a scope string or a `permissions` claim grants. */
export interface ScopePermissions {
  /** Known permissions found, deduplicated, in canonical order. */
  permissions: PermissionCode[];
  /** Whether the whole token `saleor:staff` was present. */
  staff: boolean;
  /** Whether at least one permission or the staff marker was found. */
  any: boolean;
}

/**
 * Shared token rule: keep tokens starting with `saleor:`; the whole token `saleor:staff`
 * marks staff; otherwise strip the prefix and keep the rest when it is a known codename
 * (compared as-is, so callers decide about case). Everything else is ignored.
 */
function parseTokens(tokens: Iterable<string>): ScopePermissions {
  const found: PermissionCode[] = [];
  let staff = false;
  for (const token of tokens) {
    if (!token.startsWith(SCOPE_PREFIX)) continue;
    if (token === STAFF_SCOPE) {
      staff = true;
      continue;
    }
    const code = CODE_BY_CODENAME.get(token.slice(SCOPE_PREFIX.length));
    if (code !== undefined) found.push(code);
  }
  const permissions = sortPermissions(found);
  return { permissions, staff, any: staff || permissions.length > 0 };
}

/**
 * Parses an OAuth `scope` string (space-separated, RFC 6749 §3.3) into Saleor permissions.
 *
 * As Saleor's OIDC plugin does, the string is lower-cased and split on whitespace (any
 * whitespace: spaces, tabs, newlines), tokens starting with `saleor:` are kept, the prefix
 * is stripped and known codenames are kept; unknown ones are ignored. Unlike Saleor, which
 * tests `"saleor:staff" in scope` on the whole string, staff requires the whole token
 * `saleor:staff` (`saleor:staffing` and `xsaleor:staff` are not staff).
 *
 * @param scope the granted scope; `undefined`, `null` and `''` grant nothing.
 */
export function parseScopePermissions(scope: string | undefined | null): ScopePermissions {
  if (typeof scope !== 'string') return parseTokens([]);
  return parseTokens(scope.toLowerCase().split(/\s+/u));
}

/**
 * Parses a `permissions` claim (a JSON array of `saleor:<codename>` strings, as Saleor's OIDC
 * plugin reads it) into Saleor permissions.
 *
 * Each string item is one token, parsed like a scope token but WITHOUT lower-casing (Saleor
 * does not lower-case the claim): `saleor:manage_users` is recognised, `saleor:MANAGE_USERS`
 * is not, and neither is a bare codename without the `saleor:` prefix. Items are not trimmed
 * or split. Non-string items are ignored; a claim that is not an array grants nothing.
 */
export function parsePermissionsClaim(claim: unknown): ScopePermissions {
  if (!Array.isArray(claim)) return parseTokens([]);
  return parseTokens(claim.filter((item): item is string => typeof item === 'string'));
}
