import type { Socket, TCPSocketListener } from 'bun';

/**
 * A TCP proxy to a real server that a test can cut and restore: the equivalent of PostgreSQL going away
 * (every connection dropped, new ones refused) and coming back, without touching the shared server.
 */
export class TcpProxy {
  private listener?: TCPSocketListener<{ peer?: Socket<unknown>; pending: Uint8Array[] }>;
  private readonly sockets = new Set<Socket<unknown>>();
  private frozen: { socket: Socket<unknown>; chunk: Uint8Array }[] | undefined;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Listens (again) on the same port, so clients configured with it reconnect. */
  start(): void {
    this.listener = Bun.listen<{ peer?: Socket<unknown>; pending: Uint8Array[] }>({
      hostname: '127.0.0.1',
      port: this.port,
      socket: {
        open: (client) => {
          client.data = { pending: [] };
          this.sockets.add(client);
          void Bun.connect<{ client: typeof client }>({
            hostname: this.targetHost,
            port: this.targetPort,
            socket: {
              open: (server) => {
                this.sockets.add(server);
                server.data = { client };
                client.data.peer = server;
                for (const chunk of client.data.pending) server.write(chunk);
                client.data.pending = [];
              },
              data: (server, chunk) => this.forward(server.data.client, chunk),
              close: (server) => {
                this.sockets.delete(server);
                server.data.client.end();
              },
              error: (server) => void server.data.client.end(),
            },
          }).catch(() => client.end());
        },
        data: (client, chunk) => {
          if (client.data.peer) this.forward(client.data.peer, chunk);
          else client.data.pending.push(new Uint8Array(chunk));
        },
        close: (client) => {
          this.sockets.delete(client);
          client.data.peer?.end();
        },
      },
    });
    this.port = this.listener.port;
  }

  private forward(to: Socket<unknown>, chunk: Uint8Array): void {
    if (this.frozen) this.frozen.push({ socket: to, chunk: new Uint8Array(chunk) });
    else to.write(chunk);
  }

  /** Connections stay open but nothing gets through: a network partition, or a server that stopped answering. */
  freeze(): void {
    this.frozen ??= [];
  }

  /** Ends the partition: what was held back is delivered, as TCP would after a retransmit. */
  thaw(): void {
    const held = this.frozen ?? [];
    this.frozen = undefined;
    for (const { socket, chunk } of held) socket.write(chunk);
  }

  /** Drops every open connection and refuses new ones until start() is called again. */
  cut(): void {
    this.listener?.stop(true);
    this.listener = undefined;
    for (const socket of this.sockets) socket.terminate();
    this.sockets.clear();
  }
}
