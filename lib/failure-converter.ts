// Loaded by path (alertsDataConverter, and the workflow bundle): no Node built-ins, it also runs inside workflows.
import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Failure messages and stack traces go into a payload (`encodedAttributes`), which the payload codec
 * encrypts; the failure itself says "Encoded failure". The default converter reads either form back.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
