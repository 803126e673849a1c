import type { DebugComponent } from './component.ts';

/**
 * `scenewright debug <component>`: runs one part of the engine on tensors from a safetensors file and writes its
 * outputs to another (DESIGN.md §5). Each component is one module exporting `component: DebugComponent`;
 * registering a new one is one line in DEBUG_COMPONENTS below.
 */

/** Component name → lazy module. Add a component: `name: () => import('./name.ts'),` */
export const DEBUG_COMPONENTS: Record<string, () => Promise<{ component: DebugComponent }>> = {
  transformer: () => import('./transformer.ts'),
  clip: () => import('./clip.ts'),
  t5: () => import('./t5.ts'),
  'vae-decode': () => import('./vae-decode.ts'),
  'vae-encode': () => import('./vae-encode.ts'),
  scheduler: () => import('./scheduler.ts'),
  pipeline: () => import('./pipeline.ts'),
  rag: () => import('./rag.ts'),
};
