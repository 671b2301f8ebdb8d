/**
 * The one error type for expected failures: AppError, told apart by `code` (never by message
 * text). `publicMessage` may be shown to the client; `detail` is our own short reason, for the
 * log and the audit table (never a token, a secret or text a provider wrote); `providerMessage`
 * is what a provider said (its error_description), for the log only. The edges map codes onto
 * Saleor's typed errors.
 */
export class AppError extends Error {
  constructor(
    /** Stable machine code, e.g. `provider_unavailable`, `session_ended`. */
    readonly code: string,
    /** Safe to show to the client. */
    readonly publicMessage: string,
    /** For the log only. */
    readonly detail?: string,
    options?: { cause?: unknown; providerMessage?: string },
  ) {
    super(detail ? `${publicMessage} (${detail})` : publicMessage, options);
    this.name = 'AppError';
    this.providerMessage = options?.providerMessage?.slice(0, 300);
  }

  /** What the provider said (for the log only). */
  readonly providerMessage: string | undefined;
}
