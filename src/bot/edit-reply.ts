import type { Generation } from '../store/schema.ts';
import type { BotContext } from './context.ts';
import type { EditOutcome } from './flows.ts';
import { showEditOutcome, type Posted, type Shown } from './present.ts';
import { clip, NO_MENTIONS } from './text.ts';

/**
 * What the bot answers to a change asked for in words, the same whether it came through the Edit button's
 * form or a reply: a clarifying question (linked, so replying to it answers it), "nothing to change", or
 * the new layout with its job.
 */
export async function answerEdit(
  ctx: BotContext,
  o: {
    parent: Generation;
    instruction: string;
    /** The instructions and questions that led here (a reply to a clarifying question), oldest first. */
    history: string[];
    outcome: EditOutcome;
    post: (shown: Shown) => Promise<Posted>;
    /** The request came from the Edit button: pressing it again is another way to answer a question. */
    viaForm: boolean;
  },
): Promise<void> {
  const { outcome } = o;
  const text = (content: string): Shown => ({
    content: clip(content),
    files: [],
    components: [],
    allowedMentions: NO_MENTIONS,
  });
  if (outcome.kind === 'clarify') {
    const how = o.viaForm ? ', or press **Edit** on the image again' : '';
    const posted = await o.post(text(`❓ ${outcome.question}\n-# Reply to this message with the answer${how}.`));
    ctx.store.linkMessage(posted.id, posted.channelId, o.parent.id, 'question', [
      ...o.history,
      o.instruction,
      outcome.question,
    ]);
    return;
  }
  if (outcome.kind === 'nothing') {
    await o.post(text(`🤔 ${outcome.message}`));
    return;
  }
  await ctx.attach(outcome, await o.post(showEditOutcome(outcome, ctx.flows.noModelText())));
}
