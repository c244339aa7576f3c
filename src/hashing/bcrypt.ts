/** Exactly what bcrypt writes (passlib, bcryptjs, PHP, Bun): ident, two-digit cost 04–31, 22 + 31 chars of salt and hash. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** bcrypt's cost is a log2 work factor: 4 is the library minimum, 31 the format's maximum. */
export const MIN_BCRYPT_COST = 4;
export const MAX_BCRYPT_COST = 31;

export const isBcryptHash = (hash: unknown): hash is string => typeof hash === 'string' && BCRYPT_HASH.test(hash);
