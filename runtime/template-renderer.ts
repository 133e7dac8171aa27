/**
 * A template renderer process (runtime/template-sandbox.ts starts it with a bounded heap): renders
 * one alert per message with lib/render.ts and answers with the result or the TemplateError. It ends
 * when the process that started it goes away.
 */
import { renderAlert } from '../lib/render';
import { TemplateError } from '../lib/templates';

process.on('message', (message: { config: Parameters<typeof renderAlert>[0]; context: Parameters<typeof renderAlert>[1] }) => {
  try {
    process.send!({ kind: 'rendered', rendered: renderAlert(message.config, message.context) });
  } catch (err) {
    if (err instanceof TemplateError) process.send!({ kind: 'template_error', message: err.message });
    else process.send!({ kind: 'error', message: (err as Error)?.message ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ kind: 'ready' });
