import fs from 'node:fs';
import net from 'node:net';

/** A TCP port free on `host` at this moment (another process may still take it before it is used). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `file` is a regular file this process may execute. */
export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The fields of /proc/<pid>/stat after the ")" that ends the command name (which may hold spaces and
 * parentheses): state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14), times in clock ticks
 * (100 a second on Linux). Undefined where /proc cannot be read (the process is gone, not Linux).
 */
export function procStatFields(pid: number | 'self'): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
