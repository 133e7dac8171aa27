/**
 * A local alert receiver: `npm run receiver -- --secret whsec_… [--secret …] [--port 8787] [--host 127.0.0.1]`.
 * Verifies every POST with verifyAlert, prints the alert (or the failed check), and answers 204 or 400.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { AlertVerificationError, checkSecret, verifyAlert } from '../lib/verify';

const USAGE = `Usage: npm run receiver -- --secret whsec_… [--secret whsec_…] [--port 8787] [--host 127.0.0.1]

Receives MeshHook alerts, verifies their Standard Webhooks signature and prints them.
Answers 204 to a verified alert and 400 (with the failed check) to anything else.

  --secret  the alert config's signing secret; repeat it to accept several during a rotation
  --port    port to listen on (default 8787; 0 picks a free one)
  --host    address to listen on (default 127.0.0.1, this machine only)
  --help    this text`;

const MAX_BODY_BYTES = 1024 * 1024;
const color = (code: number) => (text: string) => (process.env.FORCE_COLOR || (process.stdout.isTTY && !process.env.NO_COLOR) ? `\x1b[${code}m${text}\x1b[0m` : text);
const red = color(31);
const green = color(32);

function fail(message: string, usage = true): never {
  console.error(`receiver: ${message}${usage ? `\n\n${USAGE}` : ''}`);
  process.exit(2);
}

function parseOptions(): { secrets: string[]; port: number; host: string } {
  let values;
  try {
    ({ values } = parseArgs({
      options: { secret: { type: 'string', multiple: true }, port: { type: 'string', default: '8787' }, host: { type: 'string', default: '127.0.0.1' }, help: { type: 'boolean' } },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const secrets = values.secret ?? [];
  if (secrets.length === 0) fail('--secret is required: the signing secret shown when the alert config was created');
  secrets.forEach((secret, i) => {
    try {
      checkSecret(secret);
    } catch (err) {
      fail(`bad --secret${secrets.length > 1 ? ` #${i + 1}` : ''}: ${(err as Error).message}`, false);
    }
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port ${values.port} is not a port number`);
  return { secrets, port, host: values.host! };
}

function answer(res: http.ServerResponse, status: number, error?: { code: string; message: string }): void {
  if (!error) return void res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
}

function receiveAlert(secrets: string[], req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'POST') return answer(res, 405, { code: 'method_not_allowed', message: 'alerts are POSTed' });
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY_BYTES) return answer(res, 413, { code: 'too_large', message: `the body is over ${MAX_BODY_BYTES} bytes` });
    const at = new Date().toISOString();
    try {
      const alert = verifyAlert(Buffer.concat(chunks), req.headers, secrets);
      const timestamp = Number(req.headers['webhook-timestamp']);
      console.log(`${green('✔ verified alert')} ${req.headers['webhook-id']} (${req.method} ${req.url}, sent ${new Date(timestamp * 1000).toISOString()}, received ${at})`);
      console.log(JSON.stringify(alert, null, 2));
      answer(res, 204);
    } catch (err) {
      if (!(err instanceof AlertVerificationError)) throw err;
      console.log(red(`✘ rejected ${req.headers['webhook-id'] ?? '(no webhook-id)'} (${req.method} ${req.url}, received ${at}): ${err.check}: ${err.message}`));
      answer(res, 400, { code: err.check, message: err.message });
    }
  });
}

const { secrets, port, host } = parseOptions();
const server = http.createServer((req, res) => receiveAlert(secrets, req, res));
server.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`, false));
server.listen(port, host, () => {
  const address = server.address() as AddressInfo;
  console.log(`receiver listening on http://${host.includes(':') ? `[${host}]` : host}:${address.port} with ${secrets.length} secret${secrets.length === 1 ? '' : 's'} (Ctrl-C stops it)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => {
      console.log('receiver stopped');
      process.exit(0);
    });
  });
}
