/**
 * Many simultaneous GraphQL requests: `sendAll` sends one per token, `burst` sends `count` with
 * one token (coalescing tests), all in flight at once over keep-alive sockets.
 */
import { Pool } from 'undici';

/** One GraphQL request per token, all in flight at once; answers come back in the order of `tokens`. */
export async function sendAll(
  url: string,
  tokens: readonly string[],
  query: string,
  { connections = 100 }: { connections?: number } = {},
): Promise<Array<{ status: number; json: any }>> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const body = JSON.stringify({ query });
  try {
    return await Promise.all(
      tokens.map(async (token) => {
        const res = await pool.request({
          path: '/graphql/',
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body,
        });
        return { status: res.statusCode, json: (await res.body.json()) as any };
      }),
    );
  } finally {
    await pool.close();
  }
}

export function burst(
  url: string,
  token: string,
  query: string,
  { count = 1000, connections = 250 }: { count?: number; connections?: number } = {},
): Promise<Array<{ status: number; json: any }>> {
  return sendAll(url, Array.from({ length: count }, () => token), query, { connections });
}
