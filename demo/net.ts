/**
 * Listening helpers shared by the demo's servers: listen with a readable error for a port in
 * use, close with open keep-alive connections cut, and pick a free port up front (the API's
 * PUBLIC_URL must name its port before the server starts).
 */
import net from 'node:net';
import type http from 'node:http';

/** Every demo server listens on loopback only: the demo provider's passwords are public. */
export const DEMO_HOST = '127.0.0.1';

export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly what: string,
  ) {
    super(`port ${port} (${what}) is already in use`);
    this.name = 'PortInUseError';
  }
}

/** Listens on `port` (0: any free one) and resolves with the port taken. */
export function listen(server: net.Server | http.Server, port: number, what: string, host = DEMO_HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(port, what) : err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Stops listening and cuts idle and open connections (browsers keep them alive). */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A port free right now on `host` (tests ask for random ports: 0). */
export async function freePort(host = DEMO_HOST): Promise<number> {
  const probe = net.createServer();
  const port = await listen(probe, 0, 'probe', host);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
