/**
 * `bun run cluster:test`: starts the cluster (cluster.ts) with the settings the black-box files need and
 * runs them through nginx (TEST_BASE_URL = the balancer) — every request crossing nginx, one of three
 * instances, and PgBouncer in transaction mode. Ends with "N passed, N failed"; exits non-zero on a failure.
 */
import { BLACK_BOX_SERVER_ENV, runBlackBoxSuite } from '../lib/black-box';
import { type Cluster, describeCluster, startCluster } from './cluster';

let cluster: Cluster | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130)));
}

async function main(): Promise<number> {
  try {
    // The suite's settings in development mode, as test:runtimes has them (its key is a test key), and no
    // PUBLIC_URL: the suite's in-process apps check tokens for the default issuer.
    cluster = await startCluster({ env: { NODE_ENV: 'development', PUBLIC_URL: '', ...BLACK_BOX_SERVER_ENV } });
  } catch (error) {
    console.log(`the cluster did not start: ${error instanceof Error ? error.message : String(error)}`);
    console.log('\n0 passed, 1 failed');
    return 1;
  }
  try {
    console.log(describeCluster(cluster));
    const result = await runBlackBoxSuite(cluster.url, cluster.database.url as string);
    for (const line of result.failures) console.log(`  ${line}`);
    if (result.failures.length > 0) {
      const log = `${process.env.TMPDIR ?? '/tmp'}/hpa-cluster-test.log`;
      const servers = cluster.instances.map((i) => `--- ${i.name} ---\n${i.process?.lines.join('\n') ?? ''}`);
      await Bun.write(log, `${result.output}\n${servers.join('\n')}\n`);
      console.log(`  the whole output: ${log}`);
    }
    console.log(`\n${result.pass} passed, ${result.fail} failed`);
    return result.fail === 0 ? 0 : 1;
  } finally {
    await cluster.stop();
  }
}

process.exit(await main());
