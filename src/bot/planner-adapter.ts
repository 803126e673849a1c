import type { Config } from '../config/config.ts';
import { planEdit } from '../planner/editor.ts';
import OpenAI from 'openai';
import { LlmClient } from '../planner/llm.ts';
import { planScene } from '../planner/plan.ts';
import { renderLayout } from '../planner/layout-image.ts';
import { cappedFetch, LLM_ANSWER_MAX_BYTES } from './capped-fetch.ts';
import type { BotPlanner } from './planning.ts';

// The bot's view of src/planner: the LLM planner and editor when an LLM is configured (each falls back to
// the offline rules on failure), the offline rules otherwise, and the planner's layout pictures.

/** The planner's LLM client, with the answer size capped (the planner's own client reads any size). */
function llmClient(config: Config): LlmClient | undefined {
  const c = config.llm;
  if (!c.enabled) return undefined;
  const settings = { baseUrl: c.baseUrl, apiKey: c.apiKey, model: c.model, timeoutMs: c.timeoutMs };
  const client = new OpenAI({
    // Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
    apiKey: c.apiKey ?? 'no-key',
    baseURL: c.baseUrl,
    timeout: c.timeoutMs,
    maxRetries: 0,
    fetch: cappedFetch(LLM_ANSWER_MAX_BYTES),
  });
  return new LlmClient(settings, client);
}

export async function createBotPlanner(config: Config): Promise<BotPlanner> {
  const limits = {
    maxRegions: config.limits.maxRegions,
    minSize: config.limits.minSize,
    maxSize: config.limits.maxSize,
  };
  const llm = llmClient(config);
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
        ...(o.styles?.length ? { styles: o.styles } : {}),
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
        ...(o.styles?.length ? { styles: o.styles } : {}),
      });
      return { edit: r.edit, planner: name(r.source) };
    },
    // Discord shows images about 550 px wide in the chat: draw at that size so the labels stay legible.
    renderLayout: (scene, image) => renderLayout(scene, { ...(image ? { image } : {}), width: 512 }),
  };
}
