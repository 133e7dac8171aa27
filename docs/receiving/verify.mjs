// WEBHOOK_SECRET=whsec_… node verify.mjs headers.json < body.json   (npm install standardwebhooks)
import { readFileSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';

const body = readFileSync(0); // the raw bytes as received: verify them before parsing
const headers = JSON.parse(readFileSync(process.argv[2], 'utf8'));

try {
  const alert = new Webhook(process.env.WEBHOOK_SECRET).verify(body, headers);
  console.log(JSON.stringify(alert, null, 2));
} catch (err) {
  console.error(`rejected: ${err.message}`);
  process.exit(1);
}
