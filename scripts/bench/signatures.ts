/**
 * Signing and verification cost per token for ES256, EdDSA and HS256, with the service's own code paths
 * (jose SignJWT to sign, hono/jwt verify to check), on the runtime that runs this file:
 *   bun scripts/bench/signatures.ts
 *   node --experimental-strip-types scripts/bench/signatures.ts   (Node 22+; on Node 20 see `--runtimes`)
 *   bun scripts/bench/signatures-runtimes.ts                      (Bun, Node, Deno and workerd, one after another)
 * Prints µs per operation (median of 5 rounds). Pure CPU: no database, no network.
 */
import { verify } from 'hono/jwt';
import { SignJWT } from 'jose';

const ROUNDS = 5;
const OPS_PER_ROUND = Number(globalThis.process?.env?.SIGNATURE_OPS ?? 400);

export const ALGORITHMS = ['ES256', 'EdDSA', 'HS256'] as const;
type Alg = (typeof ALGORITHMS)[number];

async function keysFor(alg: Alg): Promise<{ sign: CryptoKey; verify: CryptoKey }> {
  if (alg === 'HS256') {
    const key = await crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode('a-benchmark-secret-key-that-is-at-least-32-bytes'),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign', 'verify'],
    );
    return { sign: key, verify: key };
  }
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const pair = (await crypto.subtle.generateKey(params, false, ['sign', 'verify'])) as CryptoKeyPair;
  return { sign: pair.privateKey, verify: pair.publicKey };
}

const claims = () => {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: '12345',
    sid: crypto.randomUUID(),
    client_id: 'hono-postgres-auth',
    iat: now,
    nbf: now,
    exp: now + 900,
    jti: crypto.randomUUID(),
    iss: 'hono-postgres-auth',
    aud: 'hono-postgres-auth',
    amr: ['pwd'],
  };
};

export async function preparedWork(
  alg: Alg,
): Promise<{ sign: () => Promise<string>; verify: (i: number) => Promise<unknown>; tokenBytes: number }> {
  const keys = await keysFor(alg);
  const sign = () => new SignJWT(claims()).setProtectedHeader({ alg, kid: 'bench', typ: 'at+jwt' }).sign(keys.sign);
  const tokens = await Promise.all(Array.from({ length: 16 }, sign));
  const verifyOne = (i: number) => verify(tokens[i % tokens.length] as string, keys.verify, { alg, typ: 'at+jwt' });
  return { sign, verify: verifyOne, tokenBytes: (tokens[0] as string).length };
}

async function time(ops: number, work: (i: number) => Promise<unknown>): Promise<number> {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < ops; i++) await work(i);
    rounds.push(((performance.now() - started) * 1000) / ops);
  }
  return rounds.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)] as number;
}

export async function measure(): Promise<Record<Alg, { signUs: number; verifyUs: number; tokenBytes: number }>> {
  const results = {} as Record<Alg, { signUs: number; verifyUs: number; tokenBytes: number }>;
  for (const alg of ALGORITHMS) {
    const work = await preparedWork(alg);
    results[alg] = {
      signUs: await time(OPS_PER_ROUND, work.sign),
      verifyUs: await time(OPS_PER_ROUND, work.verify),
      tokenBytes: work.tokenBytes,
    };
  }
  return results;
}

export function format(runtime: string, results: Awaited<ReturnType<typeof measure>>): string {
  return Object.entries(results)
    .map(
      ([alg, r]) =>
        `${runtime}\t${alg}\tsign ${r.signUs.toFixed(1)} µs\tverify ${r.verifyUs.toFixed(1)} µs\t${r.tokenBytes} B`,
    )
    .join('\n');
}

const runtime = 'Deno' in globalThis ? 'deno' : 'Bun' in globalThis ? 'bun' : 'node';
const argv: string[] = globalThis.process?.argv ?? [];
if (argv.some((arg) => /signatures\.(ts|mjs)$/.test(arg))) console.log(format(runtime, await measure()));
