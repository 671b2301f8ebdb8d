/**
 * The one error type for expected failures: AppError, told apart by `code` (never by message
 * text). `publicMessage` may be shown to the client; `detail` is for the log only (a provider's
 * raw error_description, an internal reason). The edges map codes onto Saleor's typed errors.
 */
export class AppError extends Error {
  constructor(
    /** Stable machine code, e.g. `provider_unavailable`, `session_ended`. */
    readonly code: string,
    /** Safe to show to the client. */
    readonly publicMessage: string,
    /** For the log only. */
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${publicMessage} (${detail})` : publicMessage, options);
    this.name = 'AppError';
  }
}
