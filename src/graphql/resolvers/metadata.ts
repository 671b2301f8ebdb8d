/**
 * Metadata of Users and the Shop: updateMetadata, deleteMetadata, updatePrivateMetadata,
 * deletePrivateMetadata, accountUpdate, shopSettingsUpdate, and the ObjectWithMetadata fields.
 * (Being written.)
 */
export const metadataResolvers = {
  Query: {},
  Mutation: {},
  User: {},
  Shop: {},
  ObjectWithMetadata: { __resolveType: (o: { __typename?: string }) => o.__typename ?? 'User' },
};
