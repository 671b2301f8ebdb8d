/**
 * Graceful shutdown of the HTTP edge: counts requests in flight, and once draining, asks
 * clients to close their keep-alive connections and lets `idle()` wait until the last request
 * has been answered (or a grace period runs out).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class Drain {
  /** Responses in flight, each with what to call when it ends. */
  private readonly inFlight = new Map<ServerResponse, ((res: ServerResponse) => void) | undefined>();
  private waiters: Array<() => void> = [];
  /** Set when shutdown begins: /readyz answers 503, responses close their connection. */
  draining = false;
  /** One listener for every response's 'close' (called with the response as `this`): no closure per request. */
  private readonly onClose: (this: ServerResponse) => void;

  constructor() {
    const drain = this;
    this.onClose = function (this: ServerResponse) {
      drain.release(this);
    };
  }

  get pending(): number {
    return this.inFlight.size;
  }

  /** Shutdown begins: every response not yet started will close its connection. */
  begin(): void {
    this.draining = true;
    for (const res of this.inFlight.keys()) if (!res.headersSent) res.setHeader('connection', 'close');
  }

  /**
   * Counts `res` until it is finished or its connection is gone, then calls `onDone(res)` (once).
   * A response that has its socket (the usual case) emits 'close' in both cases. One queued
   * behind another on a keep-alive socket (pipelining) has no socket yet, and never gets one if
   * that socket closes first: for it, the request's socket closing is what ends it.
   */
  track(res: ServerResponse, req: IncomingMessage, onDone?: (res: ServerResponse) => void): void {
    this.inFlight.set(res, onDone);
    if (this.draining) res.setHeader('connection', 'close');
    if (res.socket) {
      res.on('close', this.onClose);
      return;
    }
    const socket = req.socket;
    const done = () => {
      // A keep-alive socket serves many requests: its listener must not outlive this one.
      socket.off('close', done);
      res.off('close', done);
      this.release(res);
    };
    res.once('close', done);
    socket.once('close', done);
  }

  private release(res: ServerResponse): void {
    const onDone = this.inFlight.get(res);
    if (!this.inFlight.delete(res)) return;
    onDone?.(res);
    if (this.inFlight.size === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves true when nothing is in flight, false when `graceMs` ran out first. */
  idle(graceMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
