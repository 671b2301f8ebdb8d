/** Relay ids live in src/core/ids.ts (tokens and GraphQL both use them); kept for the resolvers. */
export * from '../core/ids.ts';
