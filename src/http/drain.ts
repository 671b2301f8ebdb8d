/**
 * Graceful shutdown of the HTTP edge: counts requests in flight, and once draining, asks
 * clients to close their keep-alive connections and lets `idle()` wait until the last request
 * has been answered (or a grace period runs out).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class Drain {
  private readonly inFlight = new Set<ServerResponse>();
  private waiters: Array<() => void> = [];
  /** Set when shutdown begins: /readyz answers 503, responses close their connection. */
  draining = false;

  get pending(): number {
    return this.inFlight.size;
  }

  /** Shutdown begins: every response not yet started will close its connection. */
  begin(): void {
    this.draining = true;
    for (const res of this.inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
  }

  /**
   * Counts `res` until it is finished or its connection is gone (a pipelined request queued
   * behind a response that closes the connection never gets a socket of its own: its request's
   * socket closing is what ends it).
   */
  track(res: ServerResponse, req: IncomingMessage): void {
    this.inFlight.add(res);
    if (this.draining) res.setHeader('connection', 'close');
    const socket = req.socket;
    const done = () => {
      // A keep-alive socket serves many requests: its listener must not outlive this one.
      socket.off('close', done);
      res.off('close', done);
      if (!this.inFlight.delete(res)) return;
      if (this.inFlight.size === 0) for (const w of this.waiters.splice(0)) w();
    };
    res.once('close', done);
    socket.once('close', done);
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
