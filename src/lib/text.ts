// C0 controls and DEL: never part of a typed email or password, often a smuggling attempt (NUL truncation).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

const encoder = new TextEncoder();
export const utf8Length = (text: string): number => encoder.encode(text).length;
