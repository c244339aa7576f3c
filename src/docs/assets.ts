/**
 * The files /docs and /redoc load, served by the service itself so the docs work offline and no CDN
 * sees who reads them. Only these files are reachable: serving a node_modules folder would expose
 * every package file.
 */
export const DOCS_ASSET_PREFIX = '/vendor';

interface DocsAsset {
  /** The file, as a package specifier the runtime can resolve. */
  module: string;
  contentType: string;
  rewrite?: (text: string) => string;
}

const JS = 'text/javascript; charset=utf-8';
const REDOC_LOGO_CDN = 'https://cdn.redoc.ly/redoc/logo-mini.svg';
const REDOC_LOGO_PATH = `${DOCS_ASSET_PREFIX}/redoc/logo-mini.svg`;

export const DOCS_ASSETS: Record<string, DocsAsset> = {
  // The Swagger UI page (openapi.ts) loads these two.
  [`${DOCS_ASSET_PREFIX}/swagger-ui-dist/swagger-ui.css`]: {
    module: 'swagger-ui-dist/swagger-ui.css',
    contentType: 'text/css; charset=utf-8',
  },
  [`${DOCS_ASSET_PREFIX}/swagger-ui-dist/swagger-ui-bundle.js`]: {
    module: 'swagger-ui-dist/swagger-ui-bundle.js',
    contentType: JS,
  },
  [`${DOCS_ASSET_PREFIX}/redoc/redoc.standalone.js`]: {
    module: 'redoc/bundles/redoc.standalone.js',
    contentType: JS,
    // ReDoc's footer logo is the one thing it fetches from a CDN.
    rewrite: (text) => text.replaceAll(REDOC_LOGO_CDN, REDOC_LOGO_PATH),
  },
};

export const REDOC_LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#32329f"/></svg>';
export { REDOC_LOGO_PATH };

/** How a runtime reads a docs asset: the file's text, or null when it cannot be found. */
export type ReadAsset = (module: string) => Promise<string | null>;
