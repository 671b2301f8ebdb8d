/**
 * The shop and the commerce parts of Saleor's API that the Saleor Dashboard reads at start
 * (channels, apps, app extensions), answered honestly: this server is the authentication part of
 * a commerce backend and stores no channels, apps, orders or addresses, so those are empty lists,
 * empty connections and nulls, with Saleor's types and permission rules (a staff user or an app
 * where Saleor asks for one). Nothing here invents commerce data.
 *
 * The shop's metadata (stored for real) is in ./metadata.ts.
 */
import { toGlobalId } from '../global-id.ts';
import { requirePermission, requireStaffOrApp, type GraphQLContext } from '../context.ts';
import { checkPageArgs, pageOf, type PageArgs } from '../pagination.ts';

/**
 * The version of Saleor's API whose contract we follow (Shop.version). The Saleor Dashboard
 * shows it, hands it to app frames, and reads its major.minor for an optional deprecation banner;
 * its documents use fields up to Saleor 3.23 (Shop.passwordLoginMode).
 */
export const SALEOR_API_VERSION = '3.23.0';

/** The one shop (Shop.id): what updateMetadata on the shop takes. */
export const SHOP_ID = toGlobalId('Shop', 1);

/** An empty Relay connection (the arguments are still checked). */
function emptyConnection(args: PageArgs) {
  checkPageArgs(args);
  return pageOf([], args);
}

const NO_LIMITS = { channels: null, orders: null, productVariants: null, staffUsers: null, warehouses: null };

/** Fields of User and Group about commerce data this server does not store. */
const noCommerceData = {
  avatar: () => null,
  accessibleChannels: () => [],
  restrictedAccessToChannels: () => false,
  addresses: () => [],
  defaultShippingAddress: () => null,
  defaultBillingAddress: () => null,
};

export const shopResolvers = {
  Query: {
    shop: () => ({}),
    channels: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      return [];
    },
    apps: async (_: unknown, args: PageArgs, ctx: GraphQLContext) => {
      const principal = await ctx.principal();
      // Saleor: a staff user, or MANAGE_APPS.
      if (!(principal?.kind === 'user' && principal.isStaff)) await requirePermission(ctx, ['MANAGE_APPS']);
      return emptyConnection(args);
    },
    app: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      return null;
    },
    appsInstallations: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_APPS']);
      return [];
    },
    appExtensions: async (_: unknown, args: PageArgs, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      return emptyConnection(args);
    },
  },
  Shop: {
    id: () => SHOP_ID,
    passwordLoginMode: () => 'DISABLED',
    name: (_: unknown, __: unknown, ctx: GraphQLContext) => ctx.app.config.shopName,
    domain: (_: unknown, __: unknown, ctx: GraphQLContext) => {
      const url = new URL(ctx.app.config.publicUrl);
      return { host: url.host, sslEnabled: url.protocol === 'https:', url: `${ctx.app.config.publicUrl}/` };
    },
    version: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      return SALEOR_API_VERSION;
    },
    countries: () => [],
    defaultCountry: () => null,
    defaultWeightUnit: () => null,
    languages: () => [],
    announcements: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      return [];
    },
    limits: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      await requireStaffOrApp(ctx);
      const staffUsers = await ctx.app.db.prisma.user.count({ where: { isStaff: true } });
      return { currentUsage: { ...NO_LIMITS, staffUsers }, allowedUsage: NO_LIMITS };
    },
  },
  User: {
    ...noCommerceData,
    orders: async (u: { id: number }, args: PageArgs, ctx: GraphQLContext) => {
      const principal = await ctx.principal();
      if (!(principal?.kind === 'user' && principal.user.id === u.id)) await requirePermission(ctx, ['MANAGE_STAFF']);
      return emptyConnection(args);
    },
  },
  Group: {
    restrictedAccessToChannels: () => false,
    accessibleChannels: () => [],
  },
  PluginConfiguration: {
    channel: () => null,
  },
  AccountError: {
    addressType: () => null,
  },
};
