/**
 * workerd's half of the signature micro-bench: workerd does not advance its clocks while code runs (a Spectre
 * mitigation), so the Worker only does the work and the caller times the requests: `/run?alg=ES256&op=sign&n=2000`.
 */
import { ALGORITHMS, preparedWork } from './signatures';

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const alg = url.searchParams.get('alg') as (typeof ALGORITHMS)[number];
    const n = Number(url.searchParams.get('n') ?? 0);
    if (!ALGORITHMS.includes(alg)) return new Response('alg?', { status: 400 });
    const work = await preparedWork(alg);
    const op = url.searchParams.get('op') === 'verify' ? work.verify : () => work.sign();
    for (let i = 0; i < n; i++) await op(i);
    return Response.json({ alg, n, tokenBytes: work.tokenBytes });
  },
};
