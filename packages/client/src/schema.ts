/**
 * Build input, not part of the package: its declaration, emitted by tsc, is the API's schema written out
 * in full (every route, input, status and output), so the package's types need nothing but `hono`.
 * scripts/build-client.ts turns it into dist/app-schema.d.ts.
 */
import type { Hono } from 'hono';
import type { AppType } from '../../../src/app';

type SchemaOf<A> = A extends Hono<infer _Env, infer Schema, infer _BasePath> ? Schema : never;

// A generic's instantiation has no type node to reuse, so tsc prints the inferred type structurally.
declare function expand<T>(): { [Path in keyof T & string]: { [Method in keyof T[Path] & string]: T[Path][Method] } };

export const schema = expand<SchemaOf<AppType>>();
