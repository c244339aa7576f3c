/**
 * The layering of src/, held by `bun run lint` (dependency-cruiser; README "Layout" states the same rules).
 * Each folder may import only the folders below it; type imports count (tsPreCompilationDeps), and no
 * import loop is allowed at all. swc parses the sources: TypeScript 7's compiler has no JavaScript API.
 */
const allowed = (from, ...to) => ({
  name: `layer:${from.replace(/[\\^$]/g, '').replace(/\/$/, '')}`,
  comment: `${from} may import only ${to.join(', ')}`,
  severity: 'error',
  from: { path: from },
  to: { path: '^src/', pathNot: [from, ...to] },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import loop, type imports included',
      from: {},
      to: { circular: true },
    },

    // Leaves.
    allowed('^src/lib/'),
    allowed('^src/hashing/', '^src/lib/'),
    allowed('^src/config\\.ts$', '^src/lib/', '^src/hashing/bcrypt\\.ts$'),
    allowed('^src/docs/', '^src/lib/'),
    // Metrics and traces on their libraries, behind lib/metrics.ts and lib/tracing.ts.
    allowed('^src/observability/', '^src/lib/'),
    // Storage and infrastructure.
    allowed('^src/db/', '^src/lib/', '^src/config\\.ts$'),
    allowed('^src/rate-limit/', '^src/lib/', '^src/db/', '^src/config\\.ts$'),
    // The live view of users and sessions, and how it hears of changes.
    allowed('^src/access/', '^src/lib/', '^src/db/', '^src/config\\.ts$'),
    // The domain: knows no HTTP.
    allowed(
      '^src/services/',
      '^src/lib/',
      '^src/db/',
      '^src/hashing/',
      '^src/rate-limit/',
      '^src/access/',
      '^src/config\\.ts$',
      '^src/deps\\.ts$',
    ),
    // Mail: renders and delivers what the services queued; started by the runtimes and the CLI, never by the app.
    allowed('^src/mail/', '^src/lib/', '^src/db/', '^src/services/', '^src/config\\.ts$'),
    // AppDeps composes leaf interfaces (and builds the instance's token keys).
    allowed(
      '^src/deps\\.ts$',
      '^src/lib/',
      '^src/db/',
      '^src/docs/',
      '^src/hashing/',
      '^src/rate-limit/',
      '^src/access/',
      '^src/config\\.ts$',
      '^src/services/(tokens|keys|users|admin-bootstrap)\\.ts$',
    ),
    // HTTP: shapes, bindings, middleware, routes. Routes never reach the database but through services.
    allowed('^src/schemas/', '^src/lib/', '^src/services/'),
    allowed('^src/app-env\\.ts$', '^src/lib/', '^src/services/'),
    allowed('^src/middleware/', '^src/lib/', '^src/services/', '^src/rate-limit/limits\\.ts$', '^src/app-env\\.ts$'),
    allowed('^src/routes/', '^src/lib/', '^src/services/', '^src/schemas/', '^src/middleware/', '^src/app-env\\.ts$'),
    allowed('^src/openapi\\.ts$', '^src/lib/', '^src/docs/assets\\.ts$', '^src/schemas/', '^src/app-env\\.ts$'),
    // The operator CLI: like scripts/, it opens the database itself; it knows no HTTP but as a client.
    allowed(
      '^src/cli/',
      '^src/lib/',
      '^src/db/',
      '^src/hashing/',
      '^src/rate-limit/',
      '^src/access/',
      '^src/services/',
      '^src/schemas/',
      '^src/mail/',
      '^src/config\\.ts$',
    ),
    {
      name: 'app-is-pure',
      comment: 'createApp takes everything it needs as deps: no runtime entry, no database client, no migrator',
      severity: 'error',
      from: { path: '^src/app\\.ts$' },
      to: {
        path: [
          '^src/runtimes/',
          '^src/mail/',
          '^src/db/(client-|migrate|open)',
          '^src/rate-limit/stores',
          '^src/hashing/(pool|bun|portable)',
        ],
      },
    },
    {
      name: 'observability-from-entries',
      comment:
        'prom-client and OpenTelemetry are chosen by the runtimes; the app records through lib/metrics.ts and lib/tracing.ts',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/runtimes/', '^src/observability/'] },
      to: { path: '^src/observability/' },
    },
    {
      name: 'entries-are-not-imported',
      comment: 'src/runtimes/ holds the entries; nothing in src imports them but each other',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/runtimes/' },
      to: { path: '^src/runtimes/' },
    },
    {
      name: 'drivers-only-from-entries',
      comment: 'Database clients and the migrator are opened by runtimes/, cli/, scripts/ and test/ only',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/runtimes/', '^src/cli/', '^src/db/(open|migrate|client-)'] },
      to: { path: '^src/db/(client-|migrate|open)' },
    },
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
