// WEBHOOK_SECRET=whsec_…[,whsec_…] npx tsx verify-alert.ts headers.json < body.json
import { readFileSync } from 'node:fs';
import { AlertVerificationError, verifyAlert } from 'meshhook-alerts';

const body = readFileSync(0); // the raw bytes as received: verify them before parsing
const headers = JSON.parse(readFileSync(process.argv[2], 'utf8'));

try {
  const alert = verifyAlert(body, headers, process.env.WEBHOOK_SECRET!.split(','));
  console.log(JSON.stringify(alert, null, 2));
} catch (err) {
  if (!(err instanceof AlertVerificationError)) throw err;
  console.error(`rejected (${err.check}): ${err.message}`);
  process.exit(1);
}
