/**
 * Custom scalars. JSONString follows graphene's: input is a String holding JSON (invalid JSON
 * fails validation, so the request answers 400); output is serialised JSON.
 */
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';

function parseJsonString(value: unknown): unknown {
  if (typeof value !== 'string') throw new GraphQLError('JSONString must be a string holding JSON.');
  try {
    return JSON.parse(value);
  } catch {
    throw new GraphQLError('JSONString is not valid JSON.');
  }
}

export const JSONString = new GraphQLScalarType({
  name: 'JSONString',
  serialize: (value) => (typeof value === 'string' ? value : JSON.stringify(value ?? null)),
  parseValue: parseJsonString,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('JSONString must be a string holding JSON.');
    return parseJsonString(ast.value);
  },
});

export const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (value) => (value instanceof Date ? value.toISOString() : value),
  parseValue: (value) => {
    const d = new Date(String(value));
    if (Number.isNaN(d.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 date-time.');
    return d;
  },
});

function literalValue(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.LIST:
      return ast.values.map(literalValue);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literalValue(f.value)]));
    default:
      return null;
  }
}

export const GenericScalar = new GraphQLScalarType({
  name: 'GenericScalar',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: literalValue,
});

/** Any JSON value (Saleor's `JSON`, on app extensions). */
export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: literalValue,
});

/** An object of string keys and string values (Saleor's `Metadata`). */
export const Metadata = new GraphQLScalarType({
  name: 'Metadata',
  serialize: (value) => value,
  parseValue: (value) => {
    if (!value || typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
      throw new GraphQLError('Metadata must be an object of string values.');
    }
    return value;
  },
});

function positiveInt(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new GraphQLError('PositiveInt must be a whole number greater than zero.');
  }
  return value;
}

/** A whole number greater than zero. */
export const PositiveInt = new GraphQLScalarType({
  name: 'PositiveInt',
  serialize: positiveInt,
  parseValue: positiveInt,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.INT) throw new GraphQLError('PositiveInt must be a whole number greater than zero.');
    return positiveInt(Number(ast.value));
  },
});
