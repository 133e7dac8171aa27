import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Search attributes on every alert workflow, so an operator can find all the
 * alerts of a config, a MeshHook workflow or a run in the Temporal Web UI,
 * e.g. `MeshHookRunId = "run_789"`. Registered by the embedded dev server at
 * start and by docker-compose's temporal-setup (docs/deployment.md).
 */
export const AlertConfigId = defineSearchAttributeKey('AlertConfigId', SearchAttributeType.KEYWORD);
export const AlertProjectId = defineSearchAttributeKey('AlertProjectId', SearchAttributeType.KEYWORD);
export const MeshHookWorkflowId = defineSearchAttributeKey('MeshHookWorkflowId', SearchAttributeType.KEYWORD);
export const MeshHookRunId = defineSearchAttributeKey('MeshHookRunId', SearchAttributeType.KEYWORD);
export const AlertCondition = defineSearchAttributeKey('AlertCondition', SearchAttributeType.KEYWORD);
export const AlertStatus = defineSearchAttributeKey('AlertStatus', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [AlertConfigId, AlertProjectId, MeshHookWorkflowId, MeshHookRunId, AlertCondition, AlertStatus];
