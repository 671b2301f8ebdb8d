/**
 * Audit events: who did what, when, from where. Details carry names and ids, never secrets.
 */
import type { Prisma } from '../db/database.ts';
import type { Logger } from '../log.ts';

export interface AuditEventInput {
  type: string;
  outcome: 'success' | 'failure';
  actorUserId?: number | null;
  userId?: number | null;
  pluginId?: string | null;
  ip?: string | null | undefined;
  userAgent?: string | null | undefined;
  requestId?: string | null;
  detail?: Record<string, unknown>;
}

export class AuditLog {
  constructor(
    private readonly prisma: Prisma,
    private readonly log: Logger,
  ) {}

  /** Records an event; a failure to record is logged, never thrown at the caller. */
  async record(event: AuditEventInput): Promise<void> {
    try {
      await this.prisma.auditEvent.create({
        data: {
          type: event.type,
          outcome: event.outcome,
          actorUserId: event.actorUserId ?? null,
          userId: event.userId ?? null,
          pluginId: event.pluginId ?? null,
          ip: event.ip ?? null,
          userAgent: event.userAgent?.slice(0, 512) ?? null,
          requestId: event.requestId ?? null,
          detail: (event.detail ?? {}) as object,
        },
      });
    } catch (e) {
      this.log.error('audit event not recorded', { type: event.type, errorMessage: (e as Error).message });
    }
  }
}
