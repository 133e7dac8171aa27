import net from 'node:net';

/**
 * A TCP port that forwards every connection to `target` (127.0.0.1 only): a test points a service at
 * `port` before anything listens there, then calls listen() to make the dependency "come up".
 */
export interface TcpForward {
  readonly port: number;
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function tcpForward(port: number, target: { host: '127.0.0.1'; port: number }): TcpForward {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // the other side's close ends both
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    track(client);
    track(upstream);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  return {
    port,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      }),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}
