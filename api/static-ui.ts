import fs from 'node:fs';
import path from 'node:path';
import type Koa from 'koa';

/** Where `npm run build:ui` (vite build of ui/) writes the web UI. */
export const UI_DIST = path.resolve(__dirname, '..', 'ui', 'dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

// the UI loads only its own files and talks only to this API
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/**
 * Serves the built web UI at `/`: the files of ui/dist as they are (GET and HEAD), and index.html for
 * any other path a browser navigates to (the UI routes in the browser). /api, /codec and the open
 * routes are never answered here, and a request that does not ask for HTML gets the API's JSON 404.
 * Paths are resolved inside ui/dist only: `..`, encoded or not, cannot leave it.
 */
// The first path segments of the service's own routes. Judged on the decoded path, any case, with runs
// of slashes folded: `/API/…`, `//api/…` or `/%61pi/…` is no page of the UI, so it answers the JSON 404.
const SERVICE_PATH = /^\/(api|codec|healthz|readyz|metrics|openapi\.json)(\/|$)/i;
const isServicePath = (decoded: string) => SERVICE_PATH.test(decoded.replace(/[\\/]+/g, '/'));

export function serveUi(root = UI_DIST): Koa.Middleware {
  const rootWithSep = root + path.sep;
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    let relative: string;
    try {
      relative = decodeURIComponent(ctx.path);
    } catch {
      return next();
    }
    if (isServicePath(relative)) return next();
    const file = path.resolve(root, '.' + path.posix.normalize('/' + relative));
    const inside = file === root || file.startsWith(rootWithSep);
    if (inside && file !== root && !relative.endsWith('/')) {
      const stat = await fs.promises.stat(file).catch(() => undefined);
      if (stat?.isFile()) {
        send(ctx, file, stat, relative.startsWith('/assets/'));
        return;
      }
    }
    // the SPA fallback: a page the browser navigates to (a reload of /deliveries/…)
    const wantsHtml = relative === '/' || (ctx.get('accept') ?? '').includes('text/html');
    if (!wantsHtml || path.extname(relative) !== '') return next();
    const index = path.join(root, 'index.html');
    const stat = await fs.promises.stat(index).catch(() => undefined);
    if (!stat?.isFile()) {
      ctx.status = 503;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = '<!doctype html><title>MeshHook Alerts</title><p>The web UI is not built: run <code>npm run build:ui</code> (npm install and npm start build it).</p>';
      return;
    }
    send(ctx, index, stat, false);
  };
}

function send(ctx: Koa.Context, file: string, stat: fs.Stats, immutable: boolean): void {
  ctx.status = 200;
  ctx.set('Content-Type', TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream');
  ctx.set('Content-Length', String(stat.size));
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  ctx.set('Last-Modified', stat.mtime.toUTCString());
  if (file.endsWith('.html')) {
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
  }
  // HEAD: the headers only (Koa sends no body for it)
  if (ctx.method !== 'HEAD') ctx.body = fs.createReadStream(file);
}
