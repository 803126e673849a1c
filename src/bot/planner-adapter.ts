import type { Config } from '../config/config.ts';
import { planEdit } from '../planner/editor.ts';
import { llmFromConfig } from '../planner/llm.ts';
import { planScene } from '../planner/plan.ts';
import { renderLayout } from '../planner/layout-image.ts';
import type { BotPlanner } from './planning.ts';

// The bot's view of src/planner: the LLM planner and editor when an LLM is configured (each falls back to
// the offline rules on failure), the offline rules otherwise, and the planner's layout pictures.

export async function createBotPlanner(config: Config): Promise<BotPlanner> {
  const limits = {
    maxRegions: config.limits.maxRegions,
    minSize: config.limits.minSize,
    maxSize: config.limits.maxSize,
  };
  const llm = llmFromConfig(config.llm);
  const name = (source: 'llm' | 'offline') => (source === 'llm' ? `llm:${config.llm.model}` : 'offline');
  return {
    async plan(text, o) {
      // Without an LLM, ask for the offline planner directly: its notes are for users, "no LLM configured" is not.
      const r = await planScene(text, {
        llm,
        offline: !llm,
        width: o.width,
        height: o.height,
        limits: { ...limits, maxRegions: o.maxRegions },
      });
      const notes = r.warnings.filter((w) => !/OPENAI_|LLM/.test(w));
      if (llm && r.source === 'offline')
        notes.unshift(
          'the language model could not plan this, so the simple offline planner (English only) made this layout',
        );
      return { scene: r.scene, planner: name(r.source), note: notes.length ? notes.join('; ') : undefined };
    },
    async edit(scene, instruction, o) {
      const r = await planEdit(scene, instruction, {
        llm,
        offline: !llm,
        history: o.history,
        lastIds: o.lastIds,
        limits,
      });
      return { edit: r.edit, planner: name(r.source) };
    },
    // Discord shows images about 550 px wide in the chat: draw at that size so the labels stay legible.
    renderLayout: (scene, image) => renderLayout(scene, { ...(image ? { image } : {}), width: 512 }),
  };
}
