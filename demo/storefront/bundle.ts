/**
 * Bundles the storefront script (./browser/app.ts and @saleor/auth-sdk) with esbuild's JS API
 * when the demo starts: one ES module kept in memory, with the demo's URLs compiled in.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { StorefrontConfig } from './browser/config.ts';

const ENTRY = fileURLToPath(new URL('./browser/app.ts', import.meta.url));
const BUFFER_SHIM = fileURLToPath(new URL('./browser/buffer-shim.ts', import.meta.url));

export async function bundleStorefront(config: StorefrontConfig): Promise<string> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    // @saleor/auth-sdk calls Node's Buffer to decode JWT payloads (see the shim).
    inject: [BUFFER_SHIM],
    define: { __DEMO_CONFIG__: JSON.stringify(config) },
    sourcemap: 'inline',
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output for the storefront');
  return output.text;
}
