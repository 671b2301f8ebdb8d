/**
 * Graceful shutdown of the HTTP edge: counts requests in flight, and once draining, asks
 * clients to close their keep-alive connections and lets `idle()` wait until the last request
 * has been answered (or a grace period runs out).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A response in flight: a link of the Drain's list (kept on the response itself). */
interface Tracked {
  res: ServerResponse;
  onDone: ((res: ServerResponse) => void) | undefined;
  prev: Tracked | undefined;
  next: Tracked | undefined;
}
const TRACKED = Symbol('drain.tracked');
type TrackedResponse = ServerResponse & { [TRACKED]?: Tracked | undefined };

export class Drain {
  /**
   * Responses in flight, as a doubly linked list through their `TRACKED` slot: adding and
   * removing one is a few pointer writes (a Map keyed by the response cost a hash-table insert
   * and delete per request).
   */
  private head: Tracked | undefined;
  private count = 0;
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
    return this.count;
  }

  /** Shutdown begins: every response not yet started will close its connection. */
  begin(): void {
    this.draining = true;
    for (let t = this.head; t; t = t.next) if (!t.res.headersSent) t.res.setHeader('connection', 'close');
  }

  /**
   * Counts `res` until it is finished or its connection is gone, then calls `onDone(res)` (once).
   * A response that has its socket (the usual case) emits 'close' in both cases. One queued
   * behind another on a keep-alive socket (pipelining) has no socket yet, and never gets one if
   * that socket closes first: for it, the request's socket closing is what ends it.
   */
  track(res: ServerResponse, req: IncomingMessage, onDone?: (res: ServerResponse) => void): void {
    const slot = res as TrackedResponse;
    if (slot[TRACKED]) return;
    const tracked: Tracked = { res, onDone, prev: undefined, next: this.head };
    if (this.head) this.head.prev = tracked;
    this.head = tracked;
    slot[TRACKED] = tracked;
    this.count++;
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
    const slot = res as TrackedResponse;
    const tracked = slot[TRACKED];
    if (!tracked) return;
    slot[TRACKED] = undefined;
    if (tracked.prev) tracked.prev.next = tracked.next;
    else this.head = tracked.next;
    if (tracked.next) tracked.next.prev = tracked.prev;
    this.count--;
    tracked.onDone?.(res);
    if (this.count === 0 && this.waiters.length) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves true when nothing is in flight, false when `graceMs` ran out first. */
  idle(graceMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
