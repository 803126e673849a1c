/** The planner's public API: text → Scene, (Scene, instruction) → Edit, reference resolution, layout pictures. */
export { planScene, planProblems, type PlanSceneOptions } from './plan.ts';
export { planEdit, checkReferences, editProblems, type PlanEditOptions } from './editor.ts';
export { planOffline, type PlanOptions, type PlanResult } from './offline.ts';
export { editOffline, rewriteCaption, applyAttributes, type EditOptions, type EditResult } from './offline-edit.ts';
export { resolveReference, describePosition, parseReference, type Resolution, type ResolveOptions } from './resolve.ts';
export { renderLayout, PALETTE, type LayoutImageOptions } from './layout-image.ts';
export {
  LlmClient,
  LlmError,
  llmFromConfig,
  extractJson,
  RESPONSE_MODES,
  type LlmSettings,
  type ResponseMode,
  type LlmFailure,
  type StructuredRequest,
  type StructuredResult,
} from './llm.ts';
export { WirePlan, WireEdit, ASPECTS } from './wire.ts';
