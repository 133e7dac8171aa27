import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';

export interface ApiTls {
  certPath: string;
  keyPath: string;
}

/**
 * The API's server: HTTPS with the given certificate chain and key (PEM files, read once at start),
 * plain HTTP without. Either way a request that Node's HTTP parser refuses gets the API's JSON error.
 */
export function createApiServer(handler: http.RequestListener, tls?: ApiTls): http.Server {
  const server = tls
    ? https.createServer({ cert: fs.readFileSync(tls.certPath), key: fs.readFileSync(tls.keyPath) }, handler)
    : http.createServer(handler);
  server.on('clientError', answerClientError);
  return server;
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
      ? [431, 'Request Header Fields Too Large', `request headers are larger than ${http.maxHeaderSize} bytes`]
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
