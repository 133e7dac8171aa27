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
process.send!({ kind: 'ready' });
