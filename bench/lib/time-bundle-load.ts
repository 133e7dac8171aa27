/**
 * Child of bench/tuning.ts: times one `loadWorkflowBundle` call of the copy of
 * runtime/workflow-bundle.ts under the root given as argument (its cache dir
 * is <root>/.temporal/workflow-bundles), then a second call in the same
 * process; prints `{"firstMs":…,"secondMs":…,"bundled":…,"codeBytes":…}` as its last line.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';

async function main(): Promise<void> {
  const root = process.argv[2];
  const mod = (await import(path.join(root, 'runtime', 'workflow-bundle.ts'))) as typeof import('../../runtime/workflow-bundle');
  let bundled = false;
  const t0 = performance.now();
  const bundle = await mod.loadWorkflowBundle(() => (bundled = true));
  const firstMs = performance.now() - t0;
  const t1 = performance.now();
  await mod.loadWorkflowBundle();
  const secondMs = performance.now() - t1;
  console.log(JSON.stringify({ firstMs: Math.round(firstMs * 10) / 10, secondMs: Math.round(secondMs * 10) / 10, bundled, codeBytes: bundle.code.length }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
