import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';

export interface ApiTls {
  certPath: string;
  keyPath: string;
}

/** The most a request line and its headers may take together (docs/security.md: "headers over 16 KiB"); see headerBytes. */
export const MAX_REQUEST_HEADER_BYTES = 16 * 1024;
const HEADERS_TOO_LARGE = `request headers are larger than ${MAX_REQUEST_HEADER_BYTES} bytes`;

/**
 * The API's server: HTTPS with the given certificate chain and key (PEM files, read once at start),
 * plain HTTP without. Either way a request that Node's HTTP parser refuses gets the API's JSON error,
 * and so does one whose headers are over MAX_REQUEST_HEADER_BYTES in total, however many there are.
 */
export function createApiServer(handler: http.RequestListener, tls?: ApiTls): http.Server {
  // Node's own limit, set here so that --max-http-header-size cannot widen it. It counts the bytes of
  // the URL, names and values only, not the ": " and CRLF of each line, so many small headers pass it
  // at well over the limit on the wire; the listener counts them as sent (headerBytes).
  const options = { maxHeaderSize: MAX_REQUEST_HEADER_BYTES };
  const listener: http.RequestListener = (req, res) => (headerBytes(req) > MAX_REQUEST_HEADER_BYTES ? answerHeadersTooLarge(res) : handler(req, res));
  const server = tls
    ? https.createServer({ ...options, cert: fs.readFileSync(tls.certPath), key: fs.readFileSync(tls.keyPath) }, listener)
    : http.createServer(options, listener);
  // Node keeps the first 2000 header lines by default and drops the rest unseen; keep them all, so
  // that every one is counted (Node's own limit above bounds how many there can be).
  server.maxHeadersCount = 0;
  server.on('clientError', answerClientError);
  return server;
}

/**
 * The size of the request line and headers written the usual way: `METHOD target HTTP/x.y` CRLF,
 * `Name: value` CRLF per header, CRLF. The parser keeps no more than that of a request (it drops any
 * other whitespace around a value unbuffered), so this is what the limit is about.
 */
function headerBytes(req: http.IncomingMessage): number {
  // the parser hands both over as latin1 strings: one character per byte
  let bytes = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n\r\n`.length;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) bytes += raw[i].length + 2 + raw[i + 1].length + 2;
  return bytes;
}

function answerHeadersTooLarge(res: http.ServerResponse): void {
  const body = JSON.stringify({ error: { code: 'invalid_request', message: HEADERS_TOO_LARGE } });
  res.shouldKeepAlive = false;
  res.writeHead(431, 'Request Header Fields Too Large', { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

/**
 * A request the parser refuses never reaches Koa: a control character (CR, LF, NUL, ...) in a header
 * name or value, a malformed request line, headers over Node's size limit. Node's own answer is a
 * bare `400` without a body; this one is `{ error: { code, message } }` like every other refusal.
 */
function answerClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', HEADERS_TOO_LARGE]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request was not received in time']
        : [400, 'Bad Request', `malformed HTTP request: ${describeParseError(err)}`];
  const body = JSON.stringify({ error: { code: 'invalid_request', message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function describeParseError(err: Error & { code?: string; reason?: string }): string {
  switch (err.code) {
    case 'HPE_INVALID_HEADER_TOKEN':
      return 'a header name or value contains a character HTTP does not allow (a control character such as CR, LF or NUL, or a separator in a name)';
    case 'HPE_LF_EXPECTED':
    case 'HPE_CR_EXPECTED':
      return 'a bare CR or LF in the request line or a header (lines end with CRLF)';
    case 'HPE_INVALID_METHOD':
      return 'unknown HTTP method';
    case 'HPE_INVALID_URL':
      return 'invalid request target (path)';
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return 'invalid Content-Length header';
    default:
      return (err.reason ?? err.message).slice(0, 200);
  }
}
