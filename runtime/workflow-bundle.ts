import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../lib/codec';
import { logger } from '../lib/log';

const bundleLog = logger('bundle');

const ROOT = path.resolve(__dirname, '..');
const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const CACHE_DIR = path.join(ROOT, '.temporal', 'workflow-bundles');
// Everything that can end up in the bundle: our sources and the locked dependency versions.
const INPUT_DIRS = ['workflows', 'lib'];
const INPUT_FILES = ['package-lock.json'];

function inputsHash(): string {
  const hash = createHash('sha256');
  const files = INPUT_DIRS.flatMap((dir) =>
    fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)),
  );
  for (const file of [...files.sort(), ...INPUT_FILES]) {
    const full = path.join(ROOT, file);
    if (!fs.existsSync(full)) continue;
    hash.update(file).update('\0').update(fs.readFileSync(full)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * The workflow bundle, prebuilt: webpack runs once per change of the
 * workflow code (about 2 s), and every later worker start, test and replica
 * loads the cached file from .temporal/workflow-bundles/.
 */
export async function loadWorkflowBundle(log: (line: string) => void = () => undefined): Promise<WorkflowBundleWithSourceMap> {
  const key = inputsHash();
  const code = path.join(CACHE_DIR, `${key}.js`);
  const map = path.join(CACHE_DIR, `${key}.js.map`);
  if (fs.existsSync(code) && fs.existsSync(map)) {
    return { code: fs.readFileSync(code, 'utf8'), sourceMap: fs.readFileSync(map, 'utf8') };
  }
  log('bundling the workflow code (once per change of workflows/ or lib/) ...');
  // failures raised inside workflows get their messages encrypted too (lib/codec.ts)
  const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS, failureConverterPath: FAILURE_CONVERTER_PATH, logger: quietLogger });
  try {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    // write then rename, so a concurrent reader never sees half a file
    for (const [file, text] of [[map, bundle.sourceMap], [code, bundle.code]] as const) {
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, file);
    }
  } catch (err) {
    log(`could not cache the workflow bundle in ${CACHE_DIR} (${(err as Error).message}); the next start bundles again`);
  }
  return bundle;
}

const noop = () => undefined;
// webpack's report is long and says nothing a user needs; warnings and errors still surface
const quietLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: (message: string) => bundleLog.warn({}, message),
  error: (message: string) => bundleLog.error({}, message),
};
