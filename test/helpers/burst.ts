/**
 * Many simultaneous GraphQL requests with one bearer token (coalescing tests): `count`
 * requests over `connections` keep-alive sockets, all in flight at once.
 */
import { Pool } from 'undici';

export async function burst(
  url: string,
  token: string,
  query: string,
  { count = 1000, connections = 250 }: { count?: number; connections?: number } = {},
): Promise<Array<{ status: number; json: any }>> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const body = JSON.stringify({ query });
  try {
    return await Promise.all(
      Array.from({ length: count }, async () => {
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
