/**
 * `bun run cluster [--port 8080] [--instances 3]`: the cluster in the foreground (cluster.ts); prints the
 * URL and the topology, and Ctrl-C (or SIGTERM) stops every process and drops its database.
 */
import { parseArgs } from 'node:util';
import { type Cluster, describeCluster, startCluster } from './cluster';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8080' }, instances: { type: 'string', default: '3' } },
});
const port = Number(values.port);
const instances = Number(values.instances);
if (!Number.isInteger(port) || !Number.isInteger(instances) || instances < 1 || instances > 3) {
  console.error('usage: bun run cluster [--port 8080] [--instances 1..3]');
  process.exit(2);
}

console.error('starting: database + migrations, PgBouncer, Redis, instances, nginx …');
let cluster: Cluster;
try {
  cluster = await startCluster({ port, instances });
} catch (error) {
  console.error(`the cluster did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
console.log(`${describeCluster(cluster)}\n\nserving on ${cluster.url} — Ctrl-C stops everything`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.error('\nstopping: nginx, instances, Redis, PgBouncer, database …');
    void cluster.stop().then(() => {
      console.error('stopped');
      process.exit(0);
    });
  });
}
