/**
 * The one way domain code fails on bad input: a FieldError (field, code, message).
 * The GraphQL layer turns it into Saleor's `errors: [AccountError|PluginError]` lists;
 * anything else thrown is unexpected, logged, and answered with a generic typed error.
 */

export class FieldError extends Error {
  constructor(
    /** camelCase input field the error is about, or null for the request as a whole. */
    readonly field: string | null,
    /** An AccountErrorCode / PluginErrorCode name, e.g. INVALID, NOT_FOUND. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'FieldError';
  }
}

/** Several field errors at once (e.g. configuration validation). */
export class FieldErrors extends Error {
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => `${e.field ?? '-'}: ${e.message}`).join('; '));
    this.name = 'FieldErrors';
  }
}

/** snake_case → camelCase (configuration field names → error `field` values). */
export function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}
