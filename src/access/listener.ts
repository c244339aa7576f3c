/**
 * How an instance hears of access changes, and how it proves it is still hearing them.
 * - PostgreSQL: LISTEN on a dedicated connection (DATABASE_LISTEN_URL, else DATABASE_URL unless that goes
 *   through a pooler, which cannot carry LISTEN: point DATABASE_LISTEN_URL past it). The triggers of
 *   migration 0003 NOTIFY every change as its transaction commits.
 * - PGlite: the same NOTIFYs, heard in process; one process owns the directory, so it is always connected.
 * - Redis (INVALIDATION_BUS=redis): SUBSCRIBE; the services PUBLISH each change after it commits.
 * A connection that is up is not proof of hearing (a frozen proxy keeps a socket open and silent), so the
 * listener sends itself a heartbeat every HEARTBEAT_MS through the same path and counts the view unusable
 * when one has not come back within HEARTBEAT_TIMEOUT_MS: a change published while the path was broken can
 * only be missed by a view that is no longer answering. On reconnecting, the view is dropped (view.ts).
 */
import type { Config } from '../config';
import type { DatabaseHandle } from '../db/database';
import { randomToken } from '../lib/crypto';
import { describeError, type Logger } from '../lib/logger';
import {
  ACCESS_CHANNEL,
  type AccessChange,
  type AccessMessage,
  decodeAccessMessage,
  encodeAccessMessage,
} from './changes';

const HEARTBEAT_MS = 150;
// Bounds how long a broken path can go unnoticed: with the heartbeat period, under the 1 s of API.md.
const HEARTBEAT_TIMEOUT_MS = 500;
const RECONNECT_DELAY_MS = 250;
const MAX_RECONNECT_DELAY_MS = 5_000;

/** What the listener drives: a view (or anything else that must hear changes) and its health. */
export interface AccessSink {
  apply(message: AccessMessage): void;
  setHealthy(healthy: boolean): void;
}

/** The services' side: tell the bus a transaction that changed access has committed. */
export interface AccessChanges {
  /**
   * Applies the changes on this instance at once (so its next request sees them) and, where the database
   * does not announce them itself (Redis), publishes them to the others.
   */
  committed(changes: readonly AccessChange[]): Promise<void>;
}

export interface AccessBus extends AccessChanges {
  stop(): Promise<void>;
}

interface BusOptions {
  sink: AccessSink;
  logger: Logger;
  now?: () => number;
}

/** Applies changes locally only: for a process that keeps no view of others' changes (the CLI, Workers). */
export const localOnlyBus = (sink?: Pick<AccessSink, 'apply'>): AccessBus => ({
  async committed(changes) {
    for (const change of changes) sink?.apply({ change, publishedAt: Number.NaN });
  },
  async stop() {},
});

/**
 * The heartbeat and reconnection common to both network buses: `open` connects and subscribes, resolving
 * once messages flow (it calls `deliver` for each); `ping` sends one heartbeat; `close` drops the connection.
 */
function supervise(
  name: string,
  { sink, logger, now = Date.now }: BusOptions,
  transport: {
    open(deliver: (channel: 'changes' | 'heartbeat', payload: string) => void, onClose: () => void): Promise<void>;
    ping(payload: string): Promise<unknown>;
    close(): Promise<void>;
  },
): AccessBus & { ready: Promise<void> } {
  let stopped = false;
  let connected = false;
  let healthy = false;
  let lastPong = 0;
  let reconnectDelay = RECONNECT_DELAY_MS;
  let timer: ReturnType<typeof setInterval> | undefined;
  let reconnecting: Promise<void> | undefined;
  let resolveReady = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve; // not Promise.withResolvers: Node 20 has none
  });

  const setHealthy = (value: boolean) => {
    if (value === healthy) return;
    healthy = value;
    sink.setHealthy(value);
    if (value) {
      resolveReady();
      logger.info('access listener healthy', { bus: name });
    } else if (!stopped) {
      logger.warn('access listener unhealthy: answering from the database until it recovers', { bus: name });
    }
  };

  const deliver = (channel: 'changes' | 'heartbeat', payload: string) => {
    if (channel === 'heartbeat') {
      lastPong = now();
      if (connected) setHealthy(true);
      reconnectDelay = RECONNECT_DELAY_MS;
      return;
    }
    const message = decodeAccessMessage(payload);
    if (message) sink.apply(message);
  };

  const onClose = () => {
    connected = false;
    setHealthy(false);
    if (!stopped) void reconnect();
  };

  const connect = async () => {
    await transport.open(deliver, onClose);
    connected = true;
    await transport.ping(String(now()));
  };

  const reconnect = () => {
    reconnecting ??= (async () => {
      while (!stopped) {
        try {
          await transport.close();
          await connect();
          return;
        } catch (error) {
          logger.debug('access listener reconnect failed', { bus: name, error: describeError(error) });
          await new Promise((resolve) => setTimeout(resolve, reconnectDelay));
          reconnectDelay = Math.min(reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
        }
      }
    })().finally(() => {
      reconnecting = undefined;
    });
    return reconnecting;
  };

  timer = setInterval(() => {
    if (stopped || !connected) return;
    if (now() - lastPong > HEARTBEAT_TIMEOUT_MS) {
      // Silent: the socket may be open through a frozen path. Stop answering from the view, start over.
      connected = false;
      setHealthy(false);
      void reconnect();
      return;
    }
    transport.ping(String(now())).catch(() => {});
  }, HEARTBEAT_MS);
  (timer as { unref?: () => void }).unref?.();

  void reconnect();

  return {
    ready,
    async committed(changes) {
      for (const change of changes) sink.apply({ change, publishedAt: now() });
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      setHealthy(false);
      await transport.close();
    },
  };
}

/** PostgreSQL LISTEN on a dedicated postgres.js connection (one per instance). */
export async function startPostgresBus(url: string, options: BusOptions): Promise<AccessBus> {
  const { default: postgres } = await import('postgres');
  const heartbeatChannel = `hpa_heartbeat_${randomToken(9)
    .replace(/[^A-Za-z0-9]/g, 'x')
    .toLowerCase()}`;
  let client: ReturnType<typeof postgres> | undefined;
  const bus = supervise('postgres', options, {
    async open(deliver, onClose) {
      let closed = false;
      const connection = postgres(url, {
        max: 1,
        idle_timeout: 0,
        max_lifetime: 0,
        connect_timeout: 3,
        fetch_types: false,
        onnotice: () => {},
        onnotify: (channel: string, payload: string) =>
          deliver(channel === heartbeatChannel ? 'heartbeat' : 'changes', payload),
        onclose: () => {
          if (closed) return;
          closed = true;
          onClose();
        },
      } as Parameters<typeof postgres>[1]);
      client = connection;
      await connection.unsafe(`listen ${ACCESS_CHANNEL}; listen ${heartbeatChannel}`);
    },
    ping: (payload) => (client ? client`select pg_notify(${heartbeatChannel}, ${payload})` : Promise.resolve()),
    async close() {
      const previous = client;
      client = undefined;
      await previous?.end({ timeout: 0 }).catch(() => {});
    },
  });
  await waitBriefly(bus.ready);
  return bus;
}

/** PGlite: the same NOTIFYs, in process. Always hearing: there is no connection to lose. */
export async function startPgliteBus(
  handle: Extract<DatabaseHandle, { driver: 'pglite' }>,
  { sink }: BusOptions,
): Promise<AccessBus> {
  const unlisten = await handle.client.listen(ACCESS_CHANNEL, (payload) => {
    const message = decodeAccessMessage(payload);
    if (message) sink.apply(message);
  });
  sink.setHealthy(true);
  return {
    async committed(changes) {
      for (const change of changes) sink.apply({ change, publishedAt: Date.now() });
    },
    async stop() {
      sink.setHealthy(false);
      await unlisten();
    },
  };
}

/** Redis pub/sub: a subscriber connection and a publisher connection; changes are published after commit. */
export async function startRedisBus(url: string, options: BusOptions): Promise<AccessBus> {
  const { Redis } = await import('ioredis');
  const heartbeatChannel = `hpa_heartbeat_${randomToken(9)}`;
  const connectionOptions = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 };
  const publisher = new Redis(url, { ...connectionOptions, commandTimeout: 1_000 });
  publisher.on('error', () => {});
  let subscriber: InstanceType<typeof Redis> | undefined;
  const bus = supervise('redis', options, {
    async open(deliver, onClose) {
      if (publisher.status !== 'ready') await publisher.connect().catch(() => publisher.ping());
      const connection = new Redis(url, { ...connectionOptions, retryStrategy: () => null });
      connection.on('error', () => {});
      subscriber = connection;
      let closed = false;
      connection.on('close', () => {
        if (closed) return;
        closed = true;
        onClose();
      });
      connection.on('message', (channel: string, payload: string) =>
        deliver(channel === heartbeatChannel ? 'heartbeat' : 'changes', payload),
      );
      await connection.connect();
      await connection.subscribe(ACCESS_CHANNEL, heartbeatChannel);
    },
    ping: (payload) => publisher.publish(heartbeatChannel, payload),
    async close() {
      const previous = subscriber;
      subscriber = undefined;
      previous?.disconnect();
    },
  });
  await waitBriefly(bus.ready);
  return {
    async committed(changes) {
      await bus.committed(changes);
      const publishedAt = Date.now();
      await Promise.all(
        changes.map((change) =>
          publisher.publish(ACCESS_CHANNEL, encodeAccessMessage({ change, publishedAt })).catch((error: unknown) => {
            // The others keep their entries until the heartbeat fails or ENTRY_MAX_AGE passes: say so loudly.
            options.logger.error('could not publish an access change to Redis', { error: describeError(error) });
          }),
        ),
      );
    },
    async stop() {
      await bus.stop();
      publisher.disconnect();
    },
  };
}

/** Start-up waits a moment for the first heartbeat, so a healthy instance serves from the view at once. */
const waitBriefly = (ready: Promise<void>) =>
  Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 2_000))]);

/**
 * The bus the configuration asks for, on this database: what bootstrap starts for a long-running instance.
 * LISTEN needs a connection that stays on one backend; through a transaction pooler with no direct
 * DATABASE_LISTEN_URL there is none, and the instance serves without a view (every token check reads the
 * database: slower, never stale), saying so once.
 */
export function startAccessBus(
  config: Pick<Config, 'INVALIDATION_BUS' | 'REDIS_URL'>,
  handle: DatabaseHandle,
  options: BusOptions,
): Promise<AccessBus> {
  if (config.INVALIDATION_BUS === 'redis') return startRedisBus(config.REDIS_URL, options);
  if (handle.driver === 'pglite') return startPgliteBus(handle, options);
  if (handle.sessionUrl === undefined) {
    options.logger.warn(
      'DATABASE_URL goes through a connection pooler, which cannot carry LISTEN, and DATABASE_LISTEN_URL is not ' +
        'set: every token check reads the database (no access view). Set DATABASE_LISTEN_URL to a direct ' +
        'connection, or INVALIDATION_BUS=redis',
    );
    return Promise.resolve(localOnlyBus(options.sink));
  }
  return startPostgresBus(handle.sessionUrl, options);
}
