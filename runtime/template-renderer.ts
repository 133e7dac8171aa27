/**
 * A template renderer process (runtime/template-sandbox.ts starts it with a bounded heap): renders
 * one alert per message with lib/render.ts and answers with the result, the TemplateError, or a time
 * limit passed while the machine was busy (RenderStarvedError: not the template's fault). It ends
 * when the process that started it goes away.
 */
import { renderAlert } from '../lib/render';
import { RenderStarvedError, TemplateError } from '../lib/templates';

process.on('message', (message: { config: Parameters<typeof renderAlert>[0]; context: Parameters<typeof renderAlert>[1] }) => {
  try {
    process.send!({ kind: 'rendered', rendered: renderAlert(message.config, message.context) });
  } catch (err) {
    if (err instanceof TemplateError) process.send!({ kind: 'template_error', message: err.message });
    else if (err instanceof RenderStarvedError) process.send!({ kind: 'starved', message: err.message });
    else process.send!({ kind: 'error', message: (err as Error)?.message ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
// Warm before the first alert: a cold process renders its first templates several times slower (V8
// compiles LiquidJS's paths as they first run), and a template that renders in 12 ms warm passed
// liquid's 50 ms limit on a renderer just started. Loops, filters, conditions, assign and capture,
// an exact expression, a URL: the paths alert templates take.
const WARM_STRING = '{% assign n = run.id | size %}{% capture c %}{% for a in (1..10) %}{% for b in (1..50) %}{% if b > n %}{{ a | plus: b }}{% endif %}{% endfor %}{% endfor %}{% endcapture %}{{ c | size }} {{ run.id | upcase | append: "x" | replace: "x", "y" }}';
for (let i = 0; i < 2; i++) {
  try {
    renderAlert(
      { webhook: { url: 'https://warm.invalid/{{ run.id }}?w={{ workflow.id }}', headers: { 'X-Warm': WARM_STRING } }, payload: { template: { a: WARM_STRING, b: '{{ run.id }}', c: [WARM_STRING] } } } as never,
      { run: { id: `run_warm_${i}` }, workflow: { id: 'wf_warm' } } as never,
    );
  } catch {
    // a cold first pass may pass a limit itself: it has warmed what it ran all the same
  }
}
process.send!({ kind: 'ready' });
