// The package types only its index; this file of it is the ~49k-entry password list alone
// (scripts/build-common-passwords.ts reads it to write src/lib/common-passwords.ts).
declare module '@zxcvbn-ts/language-common/dist/passwords.json.mjs' {
  const passwords: string[];
  export default passwords;
}
