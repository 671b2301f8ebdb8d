/**
 * The admin lists: staffUsers, permissionGroups and plugins, with Saleor's filter and sortBy
 * arguments, paged in both directions (./../pagination.ts).
 * (Being written.)
 */
export const listResolvers = {
  Query: {},
};
