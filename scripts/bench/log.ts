/** Progress on stderr, so stdout carries only the tables. */
export const log = (msg: string) => console.error(`[bench] ${msg}`);
