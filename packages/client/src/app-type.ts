// The service's app type, for the build (the package ships dist/app-type.d.ts instead: the schema in full).
export type { AppType } from '../../../src/app';
