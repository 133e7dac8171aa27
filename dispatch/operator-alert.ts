import type { OperatorEvent } from '../lib/operator-events';
import type { ServiceDeps } from '../runtime/deps';

/**
 * Raises one operator alert: starts its durable delivery to every operator webhook that should get
 * it (the deployment's, and the project's own). Never throws for a delivery that cannot start: an
 * operator alert must not fail the work that raised it (the failure is logged and counted).
 * Implemented in issue 13's operator-alert work (workflows/operator-alert.ts).
 */
export async function raiseOperatorAlert(deps: Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>, event: OperatorEvent): Promise<void> {
  void deps;
  void event;
  throw new Error('raiseOperatorAlert: not implemented yet');
}
