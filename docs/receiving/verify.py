# WEBHOOK_SECRET=whsec_… python3 verify.py headers.json < body.json   (pip install standardwebhooks)
import json
import os
import sys

from standardwebhooks import Webhook, WebhookVerificationError

body = sys.stdin.buffer.read()  # the raw bytes as received: verify them before parsing
with open(sys.argv[1]) as f:
    headers = json.load(f)

try:
    alert = Webhook(os.environ["WEBHOOK_SECRET"]).verify(body, headers)
except WebhookVerificationError as err:
    sys.exit(f"rejected: {err}")
print(json.dumps(alert, indent=2))
