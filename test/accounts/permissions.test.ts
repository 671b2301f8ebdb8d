import { describe, expect, it } from 'vitest';
import {
  isPermissionCode,
  parsePermissionsClaim,
  parseScopePermissions,
  PERMISSION_CODES,
  PERMISSIONS,
  permissionName,
  permissionScopes,
  sortPermissions,
  STAFF_SCOPE,
  type PermissionCode,
} from '../../src/accounts/permissions.ts';

/** Saleor's order, as docs/saleor-contract.md §5 lists it. */
const SALEOR_CODENAMES = [
  'manage_users',
  'manage_staff',
  'impersonate_user',
  'manage_apps',
  'manage_observability',
  'manage_checkouts',
  'handle_checkouts',
  'handle_taxes',
  'manage_taxes',
  'manage_channels',
  'manage_customer_types_and_attributes',
  'manage_discounts',
  'manage_gift_card',
  'manage_menus',
  'manage_orders',
  'manage_orders_import',
  'manage_pages',
  'manage_page_types_and_attributes',
  'handle_payments',
  'manage_plugins',
  'manage_products',
  'manage_product_types_and_attributes',
  'manage_shipping',
  'manage_settings',
  'manage_translations',
];

const NONE = { permissions: [], staff: false, any: false };

describe('catalogue', () => {
  it('has the 25 Saleor permissions in order', () => {
    expect(PERMISSION_CODES).toHaveLength(25);
    expect([...PERMISSION_CODES]).toEqual(SALEOR_CODENAMES.map((c) => c.toUpperCase()));
    expect(PERMISSIONS.map((p) => p.codename)).toEqual(SALEOR_CODENAMES);
    expect(PERMISSIONS.map((p) => p.code)).toEqual([...PERMISSION_CODES]);
  });

  it.each([
    ['MANAGE_USERS', 'Manage customers.'],
    ['MANAGE_STAFF', 'Manage staff.'],
    ['IMPERSONATE_USER', 'Impersonate user.'],
    ['MANAGE_APPS', 'Manage apps'],
    ['MANAGE_MENUS', 'Manage navigation.'],
    ['MANAGE_GIFT_CARD', 'Manage gift cards.'],
    ['MANAGE_TRANSLATIONS', 'Manage translations.'],
  ] as const)('%s is named %j', (code, name) => {
    expect(permissionName(code)).toBe(name);
    expect(PERMISSIONS.find((p) => p.code === code)?.name).toBe(name);
  });

  it('gives every permission a non-empty, distinct name', () => {
    const names = PERMISSIONS.map((p) => p.name);
    expect(names.every((n) => n.length > 0)).toBe(true);
    expect(new Set(names).size).toBe(25);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(PERMISSIONS)).toBe(true);
    expect(Object.isFrozen(PERMISSIONS[0])).toBe(true);
  });
});

describe('isPermissionCode', () => {
  it.each([
    ['MANAGE_USERS', true],
    ['MANAGE_TRANSLATIONS', true],
    ['manage_users', false],
    ['Manage_Users', false],
    ['MANAGE_WMS', false],
    ['STAFF', false],
    ['', false],
    [' MANAGE_USERS', false],
    ['constructor', false],
    ['toString', false],
  ])('%j → %s', (input, expected) => {
    expect(isPermissionCode(input)).toBe(expected);
  });
});

describe('sortPermissions', () => {
  it.each<[string, PermissionCode[], PermissionCode[]]>([
    ['empty', [], []],
    ['already sorted', ['MANAGE_USERS', 'MANAGE_STAFF'], ['MANAGE_USERS', 'MANAGE_STAFF']],
    [
      'reversed',
      ['MANAGE_TRANSLATIONS', 'HANDLE_PAYMENTS', 'MANAGE_USERS'],
      ['MANAGE_USERS', 'HANDLE_PAYMENTS', 'MANAGE_TRANSLATIONS'],
    ],
    [
      'duplicates',
      ['MANAGE_ORDERS', 'MANAGE_APPS', 'MANAGE_ORDERS', 'MANAGE_APPS'],
      ['MANAGE_APPS', 'MANAGE_ORDERS'],
    ],
    ['all, reversed', [...PERMISSION_CODES].reverse(), [...PERMISSION_CODES]],
  ])('%s', (_label, input, expected) => {
    expect(sortPermissions(input)).toEqual(expected);
  });

  it('accepts any iterable and drops values that are not codes', () => {
    const input = new Set(['MANAGE_PAGES', 'NOPE', 'MANAGE_MENUS']) as Set<PermissionCode>;
    expect(sortPermissions(input)).toEqual(['MANAGE_MENUS', 'MANAGE_PAGES']);
  });
});

describe('permissionScopes', () => {
  it('lists every saleor:<codename> in order, then saleor:staff', () => {
    const scopes = permissionScopes();
    expect(scopes).toEqual([...SALEOR_CODENAMES.map((c) => `saleor:${c}`), 'saleor:staff']);
    expect(STAFF_SCOPE).toBe('saleor:staff');
  });

  it('returns a fresh array each time', () => {
    const a = permissionScopes();
    a.pop();
    expect(permissionScopes()).toHaveLength(26);
  });
});

describe('parseScopePermissions', () => {
  it.each<[string, string | null | undefined, PermissionCode[], boolean]>([
    ['undefined', undefined, [], false],
    ['null', null, [], false],
    ['empty', '', [], false],
    ['whitespace only', ' \t\n ', [], false],
    ['standard OIDC scopes only', 'openid profile email offline_access', [], false],
    ['one permission', 'openid saleor:manage_users', ['MANAGE_USERS'], false],
    [
      'canonical order',
      'saleor:manage_translations saleor:manage_users saleor:handle_payments',
      ['MANAGE_USERS', 'HANDLE_PAYMENTS', 'MANAGE_TRANSLATIONS'],
      false,
    ],
    ['upper case is lower-cased', 'SALEOR:MANAGE_USERS Saleor:Manage_Staff', ['MANAGE_USERS', 'MANAGE_STAFF'], false],
    ['tabs and newlines', 'openid\tsaleor:manage_orders\nsaleor:manage_apps\r\n', ['MANAGE_APPS', 'MANAGE_ORDERS'], false],
    ['leading and trailing whitespace', '  saleor:manage_pages  ', ['MANAGE_PAGES'], false],
    ['unknown codename ignored', 'saleor:manage_wms saleor:manage_menus', ['MANAGE_MENUS'], false],
    ['prefix only ignored', 'saleor: saleor:', [], false],
    ['enum code after prefix is lower-cased', 'saleor:MANAGE_SHIPPING', ['MANAGE_SHIPPING'], false],
    ['bare codename without prefix ignored', 'manage_users', [], false],
    ['other prefix ignored', 'shop:manage_users xsaleor:manage_users', [], false],
    ['duplicates', 'saleor:manage_users saleor:manage_users SALEOR:MANAGE_USERS', ['MANAGE_USERS'], false],
    ['prototype names ignored', 'saleor:constructor saleor:__proto__ saleor:tostring', [], false],
    ['staff alone', 'openid saleor:staff', [], true],
    ['staff upper case', 'SALEOR:STAFF', [], true],
    ['staff with permissions', 'saleor:staff saleor:manage_products', ['MANAGE_PRODUCTS'], true],
    ['staff as a substring is not staff', 'saleor:staffing', [], false],
    ['staff with a prefix is not staff', 'xsaleor:staff', [], false],
    ['staff glued to another token is not staff', 'openid,saleor:staff', [], false],
    ['staff suffix is not staff', 'saleor:staff:extra', [], false],
    ['staff after a tab', 'openid\tsaleor:staff', [], true],
  ])('%s', (_label, scope, permissions, staff) => {
    expect(parseScopePermissions(scope)).toEqual({
      permissions,
      staff,
      any: staff || permissions.length > 0,
    });
  });

  it('parses every scope it advertises', () => {
    expect(parseScopePermissions(permissionScopes().join(' '))).toEqual({
      permissions: [...PERMISSION_CODES],
      staff: true,
      any: true,
    });
  });
});

describe('parsePermissionsClaim', () => {
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'saleor:manage_users'],
    ['a number', 42],
    ['an object', { 0: 'saleor:manage_users', length: 1 }],
    ['a set', new Set(['saleor:manage_users'])],
    ['an empty array', []],
  ])('not a usable array (%s) → nothing', (_label, claim) => {
    expect(parsePermissionsClaim(claim)).toEqual(NONE);
  });

  it.each<[string, unknown[], PermissionCode[], boolean]>([
    ['one permission', ['saleor:manage_users'], ['MANAGE_USERS'], false],
    [
      'canonical order',
      ['saleor:manage_settings', 'saleor:manage_channels'],
      ['MANAGE_CHANNELS', 'MANAGE_SETTINGS'],
      false,
    ],
    ['not lower-cased: enum code', ['saleor:MANAGE_USERS'], [], false],
    ['not lower-cased: prefix', ['SALEOR:manage_users'], [], false],
    ['not lower-cased: staff', ['SALEOR:STAFF'], [], false],
    ['bare codename not recognised', ['manage_users'], [], false],
    ['bare enum code not recognised', ['MANAGE_USERS'], [], false],
    ['unknown codename ignored', ['saleor:manage_wms', 'saleor:manage_pages'], ['MANAGE_PAGES'], false],
    [
      'non-strings ignored',
      [1, null, undefined, true, { code: 'saleor:manage_users' }, ['saleor:manage_staff'], 'saleor:manage_menus'],
      ['MANAGE_MENUS'],
      false,
    ],
    ['duplicates', ['saleor:manage_orders', 'saleor:manage_orders'], ['MANAGE_ORDERS'], false],
    ['staff alone', ['saleor:staff'], [], true],
    ['staff with permissions', ['saleor:manage_apps', 'saleor:staff'], ['MANAGE_APPS'], true],
    ['staff substring not staff', ['saleor:staffing', 'xsaleor:staff'], [], false],
    ['items are whole tokens (not trimmed)', [' saleor:manage_users'], [], false],
    ['items are whole tokens (not split)', ['saleor:manage_users saleor:staff'], [], false],
  ])('%s', (_label, claim, permissions, staff) => {
    expect(parsePermissionsClaim(claim)).toEqual({
      permissions,
      staff,
      any: staff || permissions.length > 0,
    });
  });
});
