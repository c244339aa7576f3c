// The package's code; its types are dist/index.d.ts, written by scripts/build-client.ts (which says why).
import { type ClientRequestOptions, hc } from 'hono/client';
import type { AppType } from './app-type';

export function createClient(baseUrl: string, options?: ClientRequestOptions) {
  return hc<AppType>(baseUrl, options);
}
